"""Hard power-off of a host (runs last: the lab is torn down after it)."""
import time

import sanless_lab


def test_power_off_a_host(lab):
    first, last = lab.hosts[0], lab.hosts[-1]
    pid = sanless_lab.get_host(last)["pid"]
    sanless_lab.power_off(last)
    assert not sanless_lab.pid_alive(pid)
    deadline = time.time() + 20
    while sanless_lab.can_reach(first, lab.ip(last), timeout=2):
        assert time.time() < deadline, "%s still answers after power-off" % last
    assert [row["qemu"] for row in sanless_lab.status() if row["name"] == last] == [False]

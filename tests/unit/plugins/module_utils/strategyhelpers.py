"""Hypothesis strategies the planner's property tests share (test_plan, test_evacuate).

Each is made once per set of arguments, not in every draw: hypothesis validates every new strategy object, which
cost more than the planning itself; the same strategies draw the same examples."""

import functools

from hypothesis import strategies as st


@functools.lru_cache(maxsize=None)
def one_of(*values):
    return st.sampled_from(values)


@functools.lru_cache(maxsize=None)
def some_of(names, min_size=0, max_size=None):
    """Distinct names (a tuple) drawn from names."""
    return st.lists(one_of(*names), unique=True, min_size=min_size, max_size=max_size)

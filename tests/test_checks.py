"""The shared argument checks (keras_cnns._checks) used by layers, ops, data and export."""

import json

import numpy as np
import pytest

from keras_cnns._checks import check_pair, check_positive_int, fail, is_int


def test_is_int_accepts_python_and_numpy_ints_not_bools_or_floats():
    assert is_int(3) and is_int(np.int64(3)) and is_int(np.uint8(1))
    assert not is_int(True) and not is_int(np.bool_(True)) and not is_int(3.0)


def test_checked_values_are_python_ints():
    # NumPy integers are accepted and converted, so layer configs stay JSON-serialisable.
    assert check_pair("strides", np.int64(2)) == (2, 2)
    assert check_pair("strides", (np.int32(1), 2)) == (1, 2)
    assert check_positive_int("groups", np.int64(3)) == 3
    json.dumps({"s": check_pair("s", np.int64(2)), "g": check_positive_int("g", np.int16(4))})
    assert check_positive_int("groups", None, allow_none=True) is None


@pytest.mark.parametrize("value", [0, -1, True, 1.0, (1,), (1, 2, 3), (1, 0), (1, True), "2", None])
def test_check_pair_rejects_with_the_argument_name(value):
    with pytest.raises(ValueError, match=r"^`strides` must be a positive integer or a pair of "
                                         r"positive integers\. Received: strides="):
        check_pair("strides", value)


@pytest.mark.parametrize("value", [0, -2, False, 2.0, "3", None])
def test_check_positive_int_rejects_with_the_argument_name(value):
    with pytest.raises(ValueError, match=r"^`groups` must be a positive integer\. Received"):
        check_positive_int("groups", value)
    if value is not None:
        with pytest.raises(ValueError, match=r"must be None or a positive integer"):
            check_positive_int("groups", value, allow_none=True)


def test_fail_message_format():
    with pytest.raises(ValueError) as e:
        fail("alpha", "must be in (0, 1]", 2)
    assert str(e.value) == "`alpha` must be in (0, 1]. Received: alpha=2"

"""DispatchKey: the modelled runtime keys in PyTorch's relative priority, alias keys, parsing."""

from __future__ import annotations

import itertools

import pytest

import dispatch
from dispatch.keys import (
    ALIAS_KEYS,
    AUTOGRAD_KEY_FOR_BACKEND,
    AUTOGRAD_KEYS,
    BACKEND_KEYS,
    KEY_BY_INDEX,
    NUM_RUNTIME_KEYS,
    RUNTIME_KEYS,
)

K = dispatch.DispatchKey

EXPECTED_RUNTIME_ORDER = [
    "CPU",
    "Meta",
    "BackendSelect",
    "Python",
    "ADInplaceOrView",
    "AutogradOther",
    "AutogradCPU",
    "AutogradMeta",
]
EXPECTED_ALIASES = ["Autograd", "CompositeImplicitAutograd", "CompositeExplicitAutograd"]


def test_runtime_keys_low_to_high():
    assert [k.name for k in RUNTIME_KEYS] == EXPECTED_RUNTIME_ORDER
    assert len(RUNTIME_KEYS) == NUM_RUNTIME_KEYS == 8


def test_priority_is_strictly_increasing_in_value_and_bit():
    for lo, hi in itertools.pairwise(RUNTIME_KEYS):
        assert lo < hi
        assert lo.bit < hi.bit
        # one bit per runtime key
        assert hi.bit == lo.bit << 1
    assert RUNTIME_KEYS[0].bit == 1


def test_priority_chain_of_a_cpu_tensor():
    # AutogradCPU -> ADInplaceOrView -> BackendSelect -> CPU (reference (a))
    assert K.AutogradCPU > K.ADInplaceOrView > K.BackendSelect > K.CPU
    # the Python key sits between BackendSelect and ADInplaceOrView
    assert K.ADInplaceOrView > K.Python > K.BackendSelect
    # every autograd key beats every non-autograd runtime key
    for a in AUTOGRAD_KEYS:
        for k in RUNTIME_KEYS:
            if k not in AUTOGRAD_KEYS:
                assert a > k
    # MetaBit > CPUBit, for the backends and their autograd keys
    assert K.Meta > K.CPU
    assert K.AutogradMeta > K.AutogradCPU > K.AutogradOther


def test_undefined_has_no_bit_and_is_neither_runtime_nor_alias():
    assert K.Undefined.value == 0
    assert K.Undefined.bit == 0
    assert not K.Undefined.is_runtime
    assert not K.Undefined.is_alias
    assert KEY_BY_INDEX[0] is K.Undefined
    assert list(KEY_BY_INDEX[1:]) == list(RUNTIME_KEYS)


def test_key_by_index_is_highest_bit_lookup():
    for k in RUNTIME_KEYS:
        assert KEY_BY_INDEX[k.bit.bit_length()] is k


@pytest.mark.parametrize("name", EXPECTED_ALIASES)
def test_alias_keys(name):
    k = K[name]
    assert k.is_alias
    assert not k.is_runtime
    assert k.bit == 0
    assert k not in RUNTIME_KEYS
    assert k > max(RUNTIME_KEYS)


def test_alias_key_list():
    assert [k.name for k in ALIAS_KEYS] == EXPECTED_ALIASES


@pytest.mark.parametrize("name", EXPECTED_RUNTIME_ORDER)
def test_runtime_keys_are_runtime(name):
    k = K[name]
    assert k.is_runtime
    assert not k.is_alias
    assert k.bit != 0


def test_backend_and_autograd_groups():
    assert (K.CPU, K.Meta) == BACKEND_KEYS
    assert (K.AutogradOther, K.AutogradCPU, K.AutogradMeta) == AUTOGRAD_KEYS
    assert {K.CPU: K.AutogradCPU, K.Meta: K.AutogradMeta} == AUTOGRAD_KEY_FOR_BACKEND


@pytest.mark.parametrize("name", ["Undefined", *EXPECTED_RUNTIME_ORDER, *EXPECTED_ALIASES])
def test_parse_round_trips(name):
    k = K.parse(name)
    assert isinstance(k, K)
    assert k.name == name
    assert str(k) == name
    assert repr(k) == f"DispatchKey.{name}"
    # parse is the identity on keys
    assert K.parse(k) is k


@pytest.mark.parametrize(
    "bad",
    ["X", "cpu", "CUDA", "AutogradFunctionality", "Autograd CPU", "", " CPU", "CPU "],
)
def test_parse_error_text(bad):
    with pytest.raises(RuntimeError) as info:
        K.parse(bad)
    assert str(info.value) == f"could not parse dispatch key: {bad}"


def test_parse_error_is_runtime_error_not_key_error():
    with pytest.raises(RuntimeError, match=r"^could not parse dispatch key: X$"):
        K.parse("X")
    try:
        K.parse("X")
    except KeyError:  # pragma: no cover - the failure being tested for
        pytest.fail("parse leaked a KeyError")
    except RuntimeError:
        pass


def test_library_impl_rejects_unparsable_key():
    with dispatch.Library("test_keys_bad_impl_key", "DEF") as lib:
        lib.define("f(Tensor x) -> Tensor")
        with pytest.raises(RuntimeError, match=r"^could not parse dispatch key: NotAKey$"):
            lib.impl("f", lambda x: x, "NotAKey")


@pytest.mark.oracle
def test_relative_priority_matches_torch():
    """Every pair of modelled keys: the higher one here is torch's highestPriorityTypeId.

    A pair of per-backend keys with different backends *and* different functionalities
    (e.g. Meta + AutogradCPU) has no faithful torch keyset (the backend bits mix), so it
    is skipped; every other pair is compared.
    """
    torch = pytest.importorskip("torch")
    C = torch._C
    compared = 0
    for a, b in itertools.combinations(RUNTIME_KEYS, 2):
        ta, tb = getattr(C.DispatchKey, a.name), getattr(C.DispatchKey, b.name)
        top = C.DispatchKeySet(ta).add(tb).highestPriorityTypeId()
        top_name = str(top).rsplit(".", 1)[-1]
        if top_name not in (a.name, b.name):
            continue
        expected = max(a, b).name
        assert top_name == expected, (a, b, top_name)
        compared += 1
    # all 28 pairs except {Meta, AutogradCPU}, whose torch keyset is {AutogradMeta, ...}
    assert compared == 27

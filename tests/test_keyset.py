"""DispatchKeySet: construction, queries, immutability, set algebra (model: frozensets of keys),
highest-priority key, and the named key sets of c10/core/DispatchKeySet.h."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import dispatch
from dispatch.keys import ALIAS_KEYS, AUTOGRAD_KEYS, RUNTIME_KEYS
from dispatch.keyset import (
    backend_dispatch_keyset,
    get_autograd_related_keyset_from_backend,
    inplace_or_view_ks,
    math_dispatch_keyset,
)
from tests.strategies import alias_keys, runtime_keys

K = dispatch.DispatchKey
KS = dispatch.DispatchKeySet

key_lists = st.lists(runtime_keys, unique=True)
key_frozensets = st.frozensets(runtime_keys)


def ks_of(keys) -> dispatch.DispatchKeySet:
    return KS(list(keys))


def model(ks: dispatch.DispatchKeySet) -> frozenset:
    return frozenset(ks)


# -- construction ---------------------------------------------------------------------------


def test_empty():
    e = KS()
    assert len(e) == 0
    assert list(e) == []
    assert e.empty()
    assert not e
    assert e.raw == 0
    assert repr(e) == "DispatchKeySet()"
    assert e.highest_priority_key() is K.Undefined


def test_construct_from_keys_iterable_and_keyset():
    a = KS(K.CPU, K.ADInplaceOrView, K.AutogradCPU)
    b = KS([K.AutogradCPU, K.CPU, K.ADInplaceOrView])
    c = KS(a)
    d = KS(K.CPU, [K.ADInplaceOrView], KS(K.AutogradCPU))
    assert a == b == c == d
    assert hash(a) == hash(b) == hash(c) == hash(d)


def test_construct_from_names_inside_an_iterable():
    assert KS(["CPU", "AutogradCPU"]) == KS(K.CPU, K.AutogradCPU)
    with pytest.raises(RuntimeError, match=r"^could not parse dispatch key: Nope$"):
        KS(["CPU", "Nope"])


def test_duplicates_collapse():
    assert len(KS([K.CPU, K.CPU, K.CPU])) == 1


def test_repr_and_str():
    ks = KS(K.AutogradCPU, K.CPU, K.ADInplaceOrView)
    assert repr(ks) == "DispatchKeySet(CPU, ADInplaceOrView, AutogradCPU)"
    assert str(ks) == repr(ks)
    full = KS(RUNTIME_KEYS)
    assert repr(full) == (
        "DispatchKeySet(CPU, Meta, BackendSelect, Python, ADInplaceOrView, AutogradOther, "
        "AutogradCPU, AutogradMeta)"
    )


def test_normal_tensor_keyset_repr():
    assert repr(dispatch.ones(2).key_set) == "DispatchKeySet(CPU, ADInplaceOrView, AutogradCPU)"


def test_from_raw_round_trip_and_range():
    for raw in range(1 << len(RUNTIME_KEYS)):
        ks = KS.from_raw(raw)
        assert ks.raw == raw
        assert KS(list(ks)) == ks
    with pytest.raises(ValueError):
        KS.from_raw(1 << len(RUNTIME_KEYS))
    with pytest.raises(ValueError):
        KS.from_raw(-1)


@pytest.mark.parametrize("alias", ALIAS_KEYS)
def test_alias_keys_rejected(alias):
    with pytest.raises(ValueError, match="alias key"):
        KS(alias)
    with pytest.raises(ValueError, match="alias key"):
        KS([K.CPU, alias])
    with pytest.raises(ValueError, match="alias key"):
        KS(K.CPU).add(alias)
    with pytest.raises(ValueError, match="alias key"):
        KS(K.CPU).remove(alias)
    with pytest.raises(ValueError, match="alias key"):
        KS(K.CPU).has(alias)
    with pytest.raises(ValueError, match="alias key"):
        KS(K.CPU) | alias
    # `in` answers a plain no: an alias key is never in a key set
    assert alias not in KS(RUNTIME_KEYS)


def test_undefined_is_never_a_member():
    assert K.Undefined not in KS(RUNTIME_KEYS)
    assert not KS(RUNTIME_KEYS).has(K.Undefined)
    assert KS(K.Undefined) == KS()


def test_non_keys_are_not_members():
    ks = KS(RUNTIME_KEYS)
    assert "CPU" not in ks
    assert 1 not in ks
    assert None not in ks


def test_algebra_rejects_other_types():
    with pytest.raises(TypeError):
        KS(K.CPU) | 1
    with pytest.raises(TypeError):
        KS(K.CPU) & "CPU"
    with pytest.raises(TypeError):
        KS(K.CPU) - frozenset([K.CPU])


def test_algebra_accepts_a_single_key():
    assert KS(K.CPU) | K.Meta == KS(K.CPU, K.Meta)
    assert KS(K.CPU, K.Meta) - K.Meta == KS(K.CPU)
    assert KS(K.CPU, K.Meta) & K.Meta == KS(K.Meta)


# -- immutability ---------------------------------------------------------------------------


def test_immutable():
    ks = KS(K.CPU)
    with pytest.raises(AttributeError):
        ks._repr = 3
    with pytest.raises(AttributeError):
        ks.foo = 1
    before = ks.raw
    ks2 = ks.add(K.Meta)
    ks3 = ks | KS(K.Meta)
    ks.remove(K.CPU)
    assert ks.raw == before
    assert ks2 == ks3 == KS(K.CPU, K.Meta)
    assert ks2 is not ks


def test_named_sets_are_immutable_values():
    s = dispatch.default_included_set
    s2 = s.add(K.Python)
    assert K.Python not in dispatch.default_included_set
    assert K.Python in s2


def test_usable_as_dict_key_and_in_sets():
    d = {KS(K.CPU): 1, KS(K.CPU, K.Meta): 2}
    assert d[KS([K.CPU])] == 1
    assert d[KS([K.Meta, K.CPU])] == 2
    assert len({KS(K.CPU), KS([K.CPU]), KS(K.Meta)}) == 2
    assert KS(K.CPU) != K.CPU
    assert KS(K.CPU) != frozenset([K.CPU])


# -- queries: hypothesis against the frozenset model ---------------------------------------


@given(key_lists, runtime_keys)
def test_membership_matches_model(keys, k):
    ks = ks_of(keys)
    assert (k in ks) == (k in keys)
    assert ks.has(k) == (k in keys)


@given(key_lists)
def test_iteration_len_bool(keys):
    ks = ks_of(keys)
    it = list(ks)
    assert it == sorted(keys)  # low -> high priority
    assert it == [k for k in RUNTIME_KEYS if k in keys]
    assert len(ks) == len(keys)
    assert bool(ks) == bool(keys)
    assert ks.empty() == (not keys)


@given(key_lists)
def test_highest_priority_key_is_max(keys):
    ks = ks_of(keys)
    expected = max(keys) if keys else K.Undefined
    assert ks.highest_priority_key() is expected
    assert ks.highestPriorityTypeId() is expected


@given(key_lists)
def test_repr_lists_keys_low_to_high(keys):
    ks = ks_of(keys)
    assert repr(ks) == "DispatchKeySet(" + ", ".join(k.name for k in sorted(keys)) + ")"


@given(key_frozensets, key_frozensets)
def test_binary_ops_match_model(a, b):
    A, B = ks_of(a), ks_of(b)
    assert model(A | B) == a | b
    assert model(A & B) == a & b
    assert model(A - B) == a - b
    assert model(A ^ B) == a ^ b
    assert A.has_any(B) == bool(a & b)
    assert A.has_all(B) == (b <= a)
    assert (A == B) == (a == b)


@given(key_frozensets, runtime_keys)
def test_add_remove_match_model(a, k):
    A = ks_of(a)
    assert model(A.add(k)) == a | {k}
    assert model(A.remove(k)) == a - {k}
    assert A.add(k).has(k)
    assert not A.remove(k).has(k)


# -- set-algebra laws ----------------------------------------------------------------------

E = KS()
FULL = KS(RUNTIME_KEYS)
keysets = key_frozensets.map(ks_of)


@given(keysets, keysets)
def test_commutativity(a, b):
    assert a | b == b | a
    assert a & b == b & a
    assert a ^ b == b ^ a


@given(keysets, keysets, keysets)
def test_associativity(a, b, c):
    assert (a | b) | c == a | (b | c)
    assert (a & b) & c == a & (b & c)
    assert (a ^ b) ^ c == a ^ (b ^ c)


@given(keysets, keysets, keysets)
def test_distributivity(a, b, c):
    assert a & (b | c) == (a & b) | (a & c)
    assert a | (b & c) == (a | b) & (a | c)
    assert a - (b | c) == (a - b) & (a - c)
    assert (a | b) - c == (a - c) | (b - c)


@given(keysets, keysets, keysets)
def test_de_morgan_via_difference(a, b, c):
    assert c - (a | b) == (c - a) & (c - b)
    assert c - (a & b) == (c - a) | (c - b)
    assert FULL - (a | b) == (FULL - a) & (FULL - b)
    assert FULL - (a & b) == (FULL - a) | (FULL - b)


@given(keysets)
def test_identity_empty_full(a):
    assert a | E == a
    assert a & E == E
    assert a - E == a
    assert E - a == E
    assert a & FULL == a
    assert a | FULL == FULL
    assert a - a == E
    assert a ^ a == E
    assert a ^ E == a
    assert FULL - (FULL - a) == a


@given(keysets)
def test_idempotence(a):
    assert a | a == a
    assert a & a == a


@given(keysets, keysets)
def test_difference_laws(a, b):
    assert not (a - b).has_any(b)
    assert (a - b) & b == E
    assert (a | b) - b == a - b
    assert (a - b) | (a & b) == a
    assert (a - b) | b == a | b
    assert a.has_all(a - b)
    assert (a | b).has_all(a)
    assert a ^ b == (a - b) | (b - a)


@given(keysets, keysets)
def test_absorption(a, b):
    assert a | (a & b) == a
    assert a & (a | b) == a


@given(keysets, keysets)
def test_highest_priority_of_union(a, b):
    top = (a | b).highest_priority_key()
    assert top is max(a.highest_priority_key(), b.highest_priority_key())


@given(keysets)
def test_raw_is_sum_of_bits(a):
    assert a.raw == sum(k.bit for k in a)
    assert KS.from_raw(a.raw) == a


# -- named sets -----------------------------------------------------------------------------


def test_default_sets():
    assert dispatch.default_included_set == KS(K.BackendSelect, K.ADInplaceOrView)
    assert dispatch.default_excluded_set == KS()


def test_autograd_dispatch_keyset():
    assert dispatch.autograd_dispatch_keyset == KS(AUTOGRAD_KEYS)
    assert list(dispatch.autograd_dispatch_keyset) == [
        K.AutogradOther,
        K.AutogradCPU,
        K.AutogradMeta,
    ]
    assert dispatch.autograd_dispatch_keyset_with_ADInplaceOrView == KS(
        K.ADInplaceOrView, *AUTOGRAD_KEYS
    )
    assert inplace_or_view_ks == KS(K.ADInplaceOrView)
    assert backend_dispatch_keyset == KS(K.CPU, K.Meta)
    assert math_dispatch_keyset == KS(K.CPU, K.Meta, *AUTOGRAD_KEYS)


def test_after_autograd_keyset():
    s = dispatch.after_autograd_keyset
    assert K.ADInplaceOrView in s
    for k in AUTOGRAD_KEYS:
        assert k not in s
    # FULL_AFTER(AutogradOther): every key of lower priority than AutogradOther
    assert s == KS(k for k in RUNTIME_KEYS if k < K.AutogradOther)
    assert s == KS(K.CPU, K.Meta, K.BackendSelect, K.Python, K.ADInplaceOrView)


def test_after_ADInplaceOrView_keyset():
    s = dispatch.after_ADInplaceOrView_keyset
    assert K.ADInplaceOrView not in s
    assert not s.has_any(dispatch.autograd_dispatch_keyset)
    assert s == KS(k for k in RUNTIME_KEYS if k < K.ADInplaceOrView)
    assert s == KS(K.CPU, K.Meta, K.BackendSelect, K.Python)
    assert dispatch.after_autograd_keyset - s == KS(K.ADInplaceOrView)


def test_masking_a_normal_tensor_keyset():
    ks = dispatch.ones(1).key_set | dispatch.default_included_set
    below_ag = ks & dispatch.after_autograd_keyset
    assert below_ag == KS(K.CPU, K.BackendSelect, K.ADInplaceOrView)
    assert below_ag.highest_priority_key() is K.ADInplaceOrView
    below_adiov = ks & dispatch.after_ADInplaceOrView_keyset
    assert below_adiov == KS(K.CPU, K.BackendSelect)
    assert below_adiov.highest_priority_key() is K.BackendSelect


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        (K.Autograd, {K.AutogradOther, K.AutogradCPU, K.AutogradMeta}),
        (
            K.CompositeImplicitAutograd,
            {K.CPU, K.Meta, K.AutogradOther, K.AutogradCPU, K.AutogradMeta},
        ),
        (K.CompositeExplicitAutograd, {K.CPU, K.Meta}),
    ],
)
def test_get_runtime_dispatch_keyset_of_alias(alias, expected):
    got = dispatch.get_runtime_dispatch_keyset(alias)
    assert isinstance(got, KS)
    assert set(got) == expected
    # None of them includes ADInplaceOrView (reference (a))
    assert K.ADInplaceOrView not in got
    assert K.BackendSelect not in got
    assert K.Python not in got


def test_alias_expansion_details():
    ag = dispatch.get_runtime_dispatch_keyset(K.Autograd)
    assert K.AutogradCPU in ag and K.CPU not in ag
    cia = dispatch.get_runtime_dispatch_keyset(K.CompositeImplicitAutograd)
    assert K.CPU in cia and K.AutogradCPU in cia and K.AutogradOther in cia
    cea = dispatch.get_runtime_dispatch_keyset(K.CompositeExplicitAutograd)
    assert K.CPU in cea and K.AutogradCPU not in cea


@given(runtime_keys)
def test_get_runtime_dispatch_keyset_of_runtime_key_is_itself(k):
    assert dispatch.get_runtime_dispatch_keyset(k) == KS(k)


@given(alias_keys)
def test_alias_expansion_is_nonempty_and_runtime_only(alias):
    got = dispatch.get_runtime_dispatch_keyset(alias)
    assert got
    assert all(k.is_runtime for k in got)


def test_autograd_related_keyset_from_backend():
    assert get_autograd_related_keyset_from_backend(K.CPU) == KS(K.ADInplaceOrView, K.AutogradCPU)
    assert get_autograd_related_keyset_from_backend(K.Meta) == KS(K.ADInplaceOrView, K.AutogradMeta)


def test_tensor_keysets():
    assert dispatch.ones(2).key_set == KS(K.CPU, K.ADInplaceOrView, K.AutogradCPU)
    assert dispatch.ones(2, device="meta").key_set == KS(K.Meta, K.ADInplaceOrView, K.AutogradMeta)
    from modes import inference_mode

    with inference_mode():
        inf = dispatch.ones(2)
    assert inf.key_set == KS(K.CPU)

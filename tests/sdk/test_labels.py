"""Attribute logic: exclusive groups, deltas on estimated attributes, joint-dataset masks (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stargan_sdk.bundle.manifest import RAFD_EXPRESSIONS, derive_groups
from stargan_sdk.errors import AttributeNameError, AttributeValueError
from stargan_sdk.images.labels import AttributeSpace, coerce_value

CELEBA = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
HAIR = CELEBA[:3]
JOINT = CELEBA + RAFD_EXPRESSIONS + ("mask_celeba", "mask_rafd")


def space(attrs: tuple[str, ...] = CELEBA) -> AttributeSpace:
    return AttributeSpace(attrs, derive_groups(attrs))


S = space()
J = space(JOINT)


@st.composite
def celeba_labels(draw: st.DrawFn) -> np.ndarray:
    """A valid CelebA label: one hair colour (or none), binary Male/Young."""
    hair = draw(st.integers(-1, 2))
    vec = np.zeros(5, np.float32)
    if hair >= 0:
        vec[hair] = 1
    vec[3:] = draw(st.lists(st.integers(0, 1), min_size=2, max_size=2))
    return vec


changes_st = st.dictionaries(st.sampled_from(CELEBA), st.sampled_from([0, 1, True, False, 0.0, 1.0]), max_size=5)


@settings(max_examples=200, deadline=None)
@given(celeba_labels(), changes_st)
def test_apply_changes_properties(original: np.ndarray, changes: dict) -> None:
    hair_on = [a for a in HAIR if changes.get(a) in (1, True)]
    active = [a for a in HAIR if original[CELEBA.index(a)] == 1]
    ambiguous = any(changes.get(a) in (0, False) for a in active) and not hair_on
    if len(hair_on) > 1 or ambiguous:
        with pytest.raises(AttributeValueError):
            S.apply_changes(original, changes)
        return
    target = S.apply_changes(original, changes)
    assert target.dtype == np.float32 and set(np.unique(target)) <= {0.0, 1.0}
    assert target[:3].sum() <= 1  # hair stays exclusive
    for name, value in changes.items():
        if value in (1, True) or S.group_of(name).kind == "binary":
            assert target[CELEBA.index(name)] == int(value)
    untouched = [a for a in ("Male", "Young") if a not in changes]
    for name in untouched:  # deltas: what was not mentioned keeps its value
        assert target[CELEBA.index(name)] == original[CELEBA.index(name)]
    if not hair_on:
        np.testing.assert_array_equal(target[:3], original[:3])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-20, 20, allow_nan=False, width=32), min_size=5, max_size=5))
def test_estimate_from_logits_is_valid_and_matches_rules(logits: list[float]) -> None:
    row = np.asarray([logits], np.float32)
    est = S.estimate_from_logits(row)[0]
    assert est[:3].sum() == 1 and est[int(np.argmax(row[0, :3]))] == 1  # argmax among hair colours
    np.testing.assert_array_equal(est[3:], (row[0, 3:] > 0).astype(np.float32))  # sigmoid > 0.5


@settings(max_examples=100, deadline=None)
@given(celeba_labels())
def test_single_attribute_targets_follow_official_create_labels(original: np.ndarray) -> None:
    targets = S.single_attribute_targets(original)
    assert [name.split("=")[0] for name, _ in targets] == list(CELEBA)
    for i, (name, vec) in enumerate(targets):
        if i < 3:  # hair colour i switched on, the others off
            np.testing.assert_array_equal(vec[:3], np.eye(3, dtype=np.float32)[i])
            np.testing.assert_array_equal(vec[3:], original[3:])
        else:  # binary attribute flipped, everything else kept
            expected = original.copy()
            expected[i] = 1 - original[i]
            np.testing.assert_array_equal(vec, expected)
            assert name == f"{CELEBA[i]}={int(expected[i])}"


def test_exclusive_rules_spelled_out() -> None:
    black_male = np.array([1, 0, 0, 1, 0], np.float32)
    np.testing.assert_array_equal(S.apply_changes(black_male, {"Blond_Hair": 1}), [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(S.apply_changes(black_male, {"Brown_Hair": 0}), black_male)  # inactive: no-op
    np.testing.assert_array_equal(S.apply_changes(black_male, {"Black_Hair": 0, "Brown_Hair": 1}), [0, 0, 1, 1, 0])
    with pytest.raises(AttributeValueError, match="ambiguous.*Blond_Hair=1"):
        S.apply_changes(black_male, {"Black_Hair": 0})
    with pytest.raises(AttributeValueError, match="exclusive"):
        S.apply_changes(black_male, {"Blond_Hair": 1, "Brown_Hair": 1})
    batch = np.stack([black_male, black_male])
    assert S.apply_changes(batch, {"Young": 1}).shape == (2, 5)


def test_unknown_names_suggest_close_matches() -> None:
    with pytest.raises(AttributeNameError, match="did you mean Blond_Hair") as e:
        S.validate_changes({"Blonde_Hair": 1})
    assert isinstance(e.value, KeyError) and "this model knows" in str(e.value)
    with pytest.raises(AttributeNameError, match="unknown attribute 'smile'"):
        S.validate_changes({"smile": 1})


@pytest.mark.parametrize("value", [0.5, 2, -1, "1", None, [1], float("nan")])
def test_bad_values_are_refused(value: object) -> None:
    with pytest.raises(AttributeValueError, match="0/1"):
        coerce_value("Male", value)


@pytest.mark.parametrize(
    "value, expected", [(True, 1), (False, 0), (1, 1), (0, 0), (1.0, 1), (np.int64(1), 1), (np.bool_(False), 0)]
)
def test_good_values_are_coerced(value: object, expected: int) -> None:
    assert coerce_value("Male", value) == expected


def test_original_vector_needs_every_attribute() -> None:
    np.testing.assert_array_equal(S.original_vector({"Blond_Hair": 1, "Male": 0, "Young": 1}), [0, 1, 0, 0, 1])
    with pytest.raises(AttributeValueError, match="missing Young"):
        S.original_vector({"Blond_Hair": 1, "Male": 0})
    with pytest.raises(AttributeValueError, match="one of Black_Hair/Blond_Hair/Brown_Hair"):
        S.original_vector({"Male": 0, "Young": 1})


def test_joint_masks_select_one_dataset() -> None:
    original = J.original_vector({"Black_Hair": 1, "Male": 1, "Young": 0})
    celeba_edit = J.apply_changes(original, {"Blond_Hair": 1})
    assert celeba_edit[JOINT.index("mask_celeba")] == 1 and celeba_edit[JOINT.index("mask_rafd")] == 0
    assert celeba_edit[JOINT.index("Blond_Hair")] == 1 and celeba_edit[5:13].sum() == 0
    rafd_edit = J.apply_changes(original, {"happy": 1})
    assert rafd_edit[JOINT.index("mask_rafd")] == 1 and rafd_edit[JOINT.index("mask_celeba")] == 0
    assert rafd_edit[:5].sum() == 0 and rafd_edit[JOINT.index("happy")] == 1 and rafd_edit[5:13].sum() == 1
    with pytest.raises(AttributeValueError, match="not both"):
        J.apply_changes(original, {"happy": 1, "Male": 0})
    with pytest.raises(AttributeValueError, match="set automatically"):
        J.apply_changes(original, {"mask_rafd": 1})
    assert "mask_celeba" not in J.editable and len(J.editable) == 13


def test_joint_estimate_accepts_classifier_without_mask_columns() -> None:
    logits = np.zeros((2, 13), np.float32)
    logits[:, JOINT.index("happy")] = 5
    logits[:, JOINT.index("Brown_Hair")] = 3
    est = J.estimate_from_logits(logits)
    assert est.shape == (2, 15) and est[0, JOINT.index("happy")] == 1 and est[0, JOINT.index("Brown_Hair")] == 1
    assert est[:, 13:].sum() == 0
    with pytest.raises(AttributeValueError, match="classifier logits"):
        J.estimate_from_logits(np.zeros((1, 7), np.float32))

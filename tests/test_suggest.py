"""One 'did you mean' wording for every registry."""
import pytest

from harness.suggest import close_matches, describe_unknown_keys, unknown_name_message


def test_unknown_name_message_suggests_close_names_and_lists_all_sorted():
    msg = unknown_name_message("rule", "rectangulr", ["triangular", "rectangular", "atan"])
    assert msg == "Unknown rule 'rectangulr'. Did you mean 'rectangular' or 'triangular'? Valid rules: atan, rectangular, triangular."
    assert unknown_name_message("rule", "zzz", ["atan"]) == "Unknown rule 'zzz'. Valid rules: atan."


def test_unknown_keys_get_their_closest_spelling_each():
    assert describe_unknown_keys(["lrr", "zeta"], ["lr", "momentum"]) == "'lrr' (did you mean 'lr'?), 'zeta'"
    assert close_matches(3, ["3x", "abc"]) == ["3x"]  # non-string names are compared as text


@pytest.mark.parametrize("build,kind", [
    (lambda: __import__("harness.activations", fromlist=["make_pair"]).make_pair("relu", "rectangulr"), "backward rule"),
    (lambda: __import__("harness.models", fromlist=["build_model"]).build_model("mlpp", input_shape=(40,), num_classes=10, act=None), "model"),
    (lambda: __import__("harness.data", fromlist=["load_dataset"]).load_dataset("mnist1dd"), "dataset"),
])
def test_every_registry_uses_the_shared_wording(build, kind):
    with pytest.raises(ValueError, match=rf"^Unknown {kind} '\w+'\. Did you mean '\w+'"):
        build()

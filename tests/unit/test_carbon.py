import pytest

from optbench.carbon import carbon_settings
from optbench.errors import UsageError


def test_unit_conversion_and_pue():
    s = carbon_settings(region="france", pue=1.5)
    # 3.6 MJ = 1 kWh
    assert s.grams(3.6e6) == pytest.approx(56 * 1.5)
    assert s.grams(None) is None
    assert "owid-2023" in s.describe() and "PUE 1.5 (user-supplied)" in s.describe()


def test_defaults_are_labelled():
    s = carbon_settings()
    assert s.region == "world" and s.pue == 1.0
    assert "default" in s.source and s.pue_source == "default 1.0"


def test_explicit_intensity_wins_and_errors_are_clear():
    assert carbon_settings(region="france", intensity=55.0).intensity_g_per_kwh == 55.0
    with pytest.raises(UsageError, match="did you mean 'france'"):
        carbon_settings(region="frnace")
    with pytest.raises(UsageError, match="at least 1.0"):
        carbon_settings(pue=0.5)

"""evaluate_probes refuses bad arguments with one clear TaalmError before any work (no traceback
from deep inside the batching)."""

import pytest

from conftest import make_llama
from taalm.core.errors import TaalmError
from taalm.data import make_probe
from taalm.evaluation.probes import evaluate_probes


@pytest.mark.parametrize("probes,kw,match", [
    ([make_probe("Sennet has the capital Ilvara", "Ilvara", "a")], {"batch_size": 0}, "batch_size must be"),
    ([make_probe("Sennet has the capital Ilvara", "Ilvara", "a")], {"batch_size": 2.5}, "batch_size must be"),
    (["Sennet has the capital Ilvara"], {}, "must be Probe objects"),
    ("Sennet has the capital Ilvara", {}, "must be a list of Probe"),
    ([], {}, "no probes"),
    ([make_probe("Sennet has the capital Ilvara", "Ilvara", "a")], {"padding_side": "middle"}, "padding_side"),
])
def test_bad_arguments_get_one_clear_error(tokenizer, probes, kw, match):
    with pytest.raises(TaalmError, match=match):
        evaluate_probes(make_llama(len(tokenizer)), tokenizer, probes, **kw)

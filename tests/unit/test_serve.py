"""``ner-serve --config-name auto``: the variant chosen for the hardware, among those exported."""

import pytest

from triton_ner.serve import auto_config_name


@pytest.fixture
def exported(tmp_path):
    def make(*config_names):
        folder = tmp_path / "ner_model" / "configs"
        folder.mkdir(parents=True, exist_ok=True)
        for name in config_names:
            (folder / f"{name}.pbtxt").write_text("")
        return tmp_path

    return make


@pytest.mark.parametrize(("configs", "cuda", "flags", "chosen"), [
    (("gpu", "cuda", "bf16"), True, {"avx512_bf16"}, "cuda"),
    (("gpu", "cuda", "bf16"), False, {"avx512_bf16"}, "bf16"),
    (("gpu", "cuda", "bf16"), False, {"amx_bf16", "avx512f"}, "bf16"),
    (("gpu", "cuda", "bf16"), False, {"avx512f", "avx2"}, None),  # BF16 would be emulated: slower than FP32
    (("gpu", "bf16", "openvino", "openvino_bf16"), False, {"amx_bf16"}, "openvino_bf16"),
    (("bf16", "openvino_bf16"), True, {"amx_bf16"}, "openvino_bf16"),  # a GPU, but no cuda variant exported
    (("bf16", "openvino", "openvino_bf16"), False, {"avx2"}, None),  # OpenVINO FP32: no faster than config.pbtxt
    (("int8", "openvino_int8"), False, {"amx_bf16"}, None),  # INT8 changes entities: only when asked for
    (("gpu",), True, {"avx512_bf16"}, None),  # gpu needs NVIDIA's backends, not in the local Triton
    ((), True, {"avx512_bf16"}, None),
])
def test_auto_picks_the_fastest_exported_variant_the_machine_runs(exported, configs, cuda, flags, chosen):
    assert auto_config_name(exported(*configs), cuda, flags) == chosen

"""Checkpoint loading/saving: strict errors naming keys, safe unpickling, round trip, inspection, model ids."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from vjepa_core.checkpoint import CheckpointError, load_official, model_id, read_checkpoint, save
from vjepa_core.config import ACPredictorConfig, EncoderConfig, PretrainPredictorConfig
from vjepa_core.inspect_ckpt import format_report, inspect_checkpoint
from vjepa_core.models import build_ac_predictor, build_encoder, build_pretrain_predictor

SENTINEL_NAME = "pwned.txt"


def _write_sentinel(path):
    with open(path, "w") as f:
        f.write("executed")


class Evil:
    """Unpickling this would call _write_sentinel: the loader must never do it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (_write_sentinel, (self.path,))


@pytest.fixture(scope="module")
def tiny(fixtures_dir):
    d = fixtures_dir / "parity_tiny_a"
    cfg = json.loads((d / "config.json").read_text())
    raw = torch.load(d / "checkpoint.pt", weights_only=True)
    return EncoderConfig(**cfg["encoder"]), ACPredictorConfig(**cfg["predictor"]), raw, dict(np.load(d / "io.npz"))


def _write(tmp_path, raw, section, mutate):
    ck = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    mutate(ck[section])
    p = tmp_path / "ck.pt"
    torch.save(ck, p)
    return p


def test_missing_key_named(tmp_path, tiny):
    ecfg, _, raw, _ = tiny
    p = _write(tmp_path, raw, "encoder", lambda sd: sd.pop("module.backbone.blocks.1.mlp.fc2.bias"))
    with pytest.raises(CheckpointError, match=r"missing keys: blocks\.1\.mlp\.fc2\.bias"):
        load_official(p, ecfg)


def test_unexpected_key_named(tmp_path, tiny):
    ecfg, pcfg, raw, _ = tiny
    p = _write(tmp_path, raw, "predictor", lambda sd: sd.__setitem__("module.backbone.foo.weight", torch.zeros(3)))
    with pytest.raises(CheckpointError, match=r"unexpected keys: foo\.weight"):
        load_official(p, ecfg, pcfg)


def test_misshaped_key_named(tmp_path, tiny):
    ecfg, _, raw, _ = tiny
    p = _write(tmp_path, raw, "encoder", lambda sd: sd.__setitem__("module.backbone.norm.weight", torch.ones(95)))
    with pytest.raises(CheckpointError, match=r"mis-shaped keys: norm\.weight: checkpoint \[95\] vs model \[96\]"):
        load_official(p, ecfg)


def test_wrong_config_is_refused(fixtures_dir, tiny):
    ecfg, _, _, _ = tiny
    wrong = EncoderConfig(**{**ecfg.to_dict(), "depth": 3})
    with pytest.raises(CheckpointError, match=r"missing keys: blocks\.2\."):
        load_official(fixtures_dir / "parity_tiny_a" / "checkpoint.pt", wrong)


def test_absent_section(fixtures_dir, tiny):
    ecfg, _, _, _ = tiny
    with pytest.raises(CheckpointError, match="no 'target_encoder' entry"):
        load_official(fixtures_dir / "parity_tiny_a" / "checkpoint.pt", ecfg, encoder_key="target_encoder")


def test_arbitrary_pickle_refused_without_executing(tmp_path, tiny):
    ecfg, _, _, _ = tiny
    sentinel = tmp_path / SENTINEL_NAME
    for i, save_fn in enumerate((torch.save, lambda o, p: p.write_bytes(pickle.dumps(o, protocol=2)))):
        p = tmp_path / f"evil{i}.pt"
        save_fn({"encoder": Evil(str(sentinel))}, p)
        with pytest.raises(CheckpointError, match="refused|not a readable"):
            load_official(p, ecfg)
        assert not sentinel.exists(), "the pickled object's code was executed"
    # Sanity: the payload really would run if unpickled unsafely.
    pickle.loads(pickle.dumps(Evil(str(sentinel))))
    assert sentinel.exists()


def test_text_file_and_missing_file(tmp_path, tiny):
    ecfg, _, _, _ = tiny
    p = tmp_path / "notes.pt"
    p.write_text("<html>404 Not Found</html>\n")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_official(p, ecfg)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_official(tmp_path / "nope.pt", ecfg)
    t = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], t)
    with pytest.raises(CheckpointError, match="expected a dict"):
        read_checkpoint(t)


def test_truncated_empty_and_damaged_files_named_as_such(tmp_path, tiny):
    """A cut-off or damaged checkpoint is reported as truncated/corrupt, not as "a text/HTML file"."""
    ecfg, _, _, _ = tiny
    torch.manual_seed(0)
    good = save(tmp_path / "good.pt", build_encoder(ecfg))
    data = good.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])  # a zip archive without its end (central directory)
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint: it is truncated or corrupt") as e:
        read_checkpoint(cut)
    assert "text/HTML" not in str(e.value) and f"{len(data) // 2} bytes" in str(e.value)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="the file is empty"):
        read_checkpoint(empty)
    legacy = tmp_path / "legacy.pt"  # the old non-zip pickle format, cut off
    torch.save({"encoder": {"w": torch.zeros(4096)}}, legacy, _use_new_zipfile_serialization=False)
    legacy.write_bytes(legacy.read_bytes()[:3000])
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(legacy)
    # Damage inside tensor data: torch.load does not notice; verify=True (what resuming uses) does.
    damaged = tmp_path / "damaged.pt"
    buf = bytearray(data)
    mid = len(buf) // 2
    buf[mid: mid + 64] = bytes(b ^ 0xFF for b in buf[mid: mid + 64])
    damaged.write_bytes(bytes(buf))
    with pytest.raises(CheckpointError, match="fails its CRC check"):
        read_checkpoint(damaged, verify=True)
    assert read_checkpoint(good, verify=True).keys() >= {"encoder", "target_encoder"}


def test_one_atomic_writer(tmp_path, tiny):
    """save() and save_state_dicts() (what the trainer writes latest.pt with) give the same layout; a failed
    write leaves the previous file intact and no temporary file behind."""
    from vjepa_core.checkpoint import save_state_dicts

    ecfg, pcfg, _, _ = tiny
    torch.manual_seed(0)
    enc, pred = build_encoder(ecfg), build_ac_predictor(pcfg)
    a = torch.load(save(tmp_path / "a.pt", enc, pred, epoch=2), weights_only=True)
    meta = {"encoder_config": ecfg.to_dict(), "predictor_type": "ACPredictorConfig",
            "predictor_config": pcfg.to_dict()}
    b = torch.load(save_state_dicts(tmp_path / "b.pt", encoder=enc.state_dict(), predictor=pred.state_dict(),
                                    meta=meta, epoch=2), weights_only=True)
    assert list(a) == list(b) == ["epoch", "encoder", "target_encoder", "predictor", "vjepa2_ros"]
    assert a["vjepa2_ros"] == b["vjepa2_ros"] and a["epoch"] == b["epoch"] == 2
    for sec in ("encoder", "target_encoder", "predictor"):
        assert a[sec].keys() == b[sec].keys() and all(torch.equal(a[sec][k], b[sec][k]) for k in a[sec])
    before = (tmp_path / "a.pt").read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - torch.save's error for an unpicklable object varies by version
        save(tmp_path / "a.pt", enc, extra={"bad": lambda: 0})
    assert (tmp_path / "a.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt"]
    with pytest.raises(ValueError, match="would overwrite checkpoint sections"):
        save_state_dicts(tmp_path / "c.pt", encoder=enc.state_dict(), extra={"encoder": {}})


def test_round_trip_identical_outputs(tmp_path, tiny):
    ecfg, pcfg, _, io = tiny
    torch.manual_seed(0)
    enc, pred = build_encoder(ecfg), build_ac_predictor(pcfg)
    p = save(tmp_path / "ours.pt", enc, pred, epoch=3)
    raw = torch.load(p, weights_only=True)
    assert {"encoder", "target_encoder", "predictor", "epoch"} <= set(raw)
    assert all(k.startswith("module.backbone.") for s in ("encoder", "target_encoder", "predictor") for k in raw[s])
    enc2, pred2 = load_official(p, ecfg, pcfg)
    enc3, _ = load_official(p, ecfg, encoder_key="target_encoder")
    video = torch.from_numpy(io["video"])
    args = [torch.from_numpy(io[k]) for k in ("predictor_tokens", "predictor_actions", "predictor_states")]
    with torch.no_grad():
        assert torch.equal(enc(video), enc2(video))
        assert torch.equal(enc(video), enc3(video))
        assert torch.equal(pred(*args), pred2(*args))
        assert not torch.equal(enc(video), build_encoder(ecfg)(video))  # a fresh init really differs


def test_pretrain_predictor_round_trip(tmp_path, tiny):
    ecfg, _, _, _ = tiny
    pcfg = PretrainPredictorConfig(img_size=64, num_frames=4, embed_dim=96, predictor_embed_dim=48, depth=2,
                                   num_heads=4, num_mask_tokens=2)
    torch.manual_seed(0)
    pred = build_pretrain_predictor(pcfg)
    with torch.no_grad():
        for t in pred.mask_tokens:
            t.normal_()
    p = save(tmp_path / "pre.pt", build_encoder(ecfg), pred)
    _, pred2 = load_official(p, ecfg, pcfg)
    ids = torch.arange(32)
    mx, my = ids[None, ::2].repeat(2, 1), ids[None, 1::2].repeat(2, 1)
    ctx = torch.randn(2, 16, 96)
    with torch.no_grad():
        out = pred(ctx, mx, my, mask_index=1)
        assert out.shape == (2, 16, 96)
        assert torch.equal(out, pred2(ctx, mx, my, mask_index=1))


def test_inspect_report(fixtures_dir, tiny):
    ecfg, pcfg, _, _ = tiny
    path = fixtures_dir / "parity_tiny_a" / "checkpoint.pt"
    rep = inspect_checkpoint(path, ecfg, pcfg)
    assert rep.ok and rep.top_level_keys == ["encoder", "epoch", "predictor"]
    assert rep.sections["encoder"].num_params == sum(p.numel() for p in build_encoder(ecfg).parameters())
    assert rep.sections["encoder"].prefixes == ["module.backbone."]
    bad = inspect_checkpoint(path, "vit_large", None)
    assert not bad.ok
    assert ("norm.weight", [96], [1024]) in bad.sections["encoder"].mismatched
    assert "blocks.23.norm1.weight" in bad.sections["encoder"].missing
    text = format_report(bad)
    assert "MISMATCH" in text and "blocks.0.attn.proj.bias: checkpoint [96] vs config [1024]" in text


def test_inspect_detects_released_arch(tmp_path):
    """A file with ViT-L key shapes is recognised (tensors stored empty-strided via a tiny fake)."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in build_encoder(EncoderConfig.preset("vit_large")).state_dict().items()}
    # Zero-stride expanded tensors keep the file tiny while keeping shapes.
    sd = {"module.backbone." + k: torch.zeros(1).expand(s) for k, s in shapes.items()}
    p = tmp_path / "vitl_like.pt"
    torch.save({"encoder": sd, "epoch": 1}, p)
    rep = inspect_checkpoint(p, "vit_large")
    assert rep.sections["encoder"].detected_arch == "vit_large"
    assert rep.sections["encoder"].num_params == 303_885_312
    assert rep.ok


def test_model_id(fixtures_dir, tiny, tmp_path):
    ecfg, _, _, _ = tiny
    mid = model_id(EncoderConfig.preset("vit_giant"), fixtures_dir / "parity_tiny_a" / "checkpoint.pt")
    arch, digest = mid.split("@")
    assert arch == "vit_giant" and len(digest) == 12 and int(digest, 16) >= 0
    assert model_id(ecfg, fixtures_dir / "parity_tiny_a" / "checkpoint.pt").startswith("vit_custom_d96")
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    assert model_id("a", f) == "a@ba7816bf8f01"  # sha256("abc")

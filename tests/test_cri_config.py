"""The CRI's settings: where its socket goes, and [cri] checked at start-up (no root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from podkit.cri.config import CRIConfig, cni_conflist
from podkit.daemon import config as config_mod
from podkit.errors import InvalidArgument


def _load(tmp_path: Path, text: str, **flags: str) -> config_mod.Config:
    cfg = tmp_path / "podkitd.toml"
    cfg.write_text(text)
    return config_mod.load(str(cfg), flags)


def test_cri_socket_default_state_flag_and_config(tmp_path: Path) -> None:
    assert _load(tmp_path, "").cri_socket == Path("/run/podkit/cri.sock")
    assert _load(tmp_path, "", state="/x/state").cri_socket == Path("/x/state/cri.sock")
    assert _load(tmp_path, '[cri]\nsocket = "/s/cri.sock"\n', state="/x").cri_socket == Path("/s/cri.sock")
    got = _load(tmp_path, '[cri]\nsocket = "/s/cri.sock"\n', cri_socket="/flag.sock").cri_socket
    assert got == Path("/flag.sock")
    with pytest.raises(InvalidArgument, match="absolute"):
        _load(tmp_path, '[cri]\nsocket = "relative.sock"\n')


def test_cri_section_checked() -> None:
    c = CRIConfig.from_section({"sandbox_image": "x/pause:1", "stream_port": 10010, "enabled": False})
    assert (c.sandbox_image, c.stream_port, c.enabled) == ("x/pause:1", 10010, False)
    for bad in (
        {"enabled": "yes"},
        {"stream_port": 70000},
        {"stream_port": True},
        {"stream_token_ttl": 0},
        {"sandbox_image": ""},
        {"no_such_setting": 1},
    ):
        with pytest.raises(InvalidArgument, match=r"\[cri\]"):
            CRIConfig.from_section(bad)


def test_cni_conflist_first_by_name(tmp_path: Path) -> None:
    assert cni_conflist(str(tmp_path / "missing")) is None
    assert cni_conflist(str(tmp_path)) is None
    (tmp_path / "20-b.conflist").write_text("{}")
    (tmp_path / "10-a.conf").write_text("{}")
    (tmp_path / "README").write_text("")
    assert cni_conflist(str(tmp_path)) == tmp_path / "10-a.conf"

"""docker's container create body as podkit options (podkit.dockerapi.create): a
pure translation, checked here without a daemon."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from podkit.containers.options import CreateOptions
from podkit.dockerapi.create import translate
from podkit.errors import InvalidArgument


def test_process_fields_and_zero_values() -> None:
    body = {
        "Image": "busybox",
        "Cmd": ["echo", "hi"],
        "Entrypoint": None,
        "Env": ["A=1"],
        "User": "nobody",
        "WorkingDir": "/tmp",
        "Labels": {"k": "v"},
        "StopSignal": "SIGUSR1",
        "Tty": True,
        "OpenStdin": True,
        "StdinOnce": True,
        # what the docker CLI sends when flags are not given
        "HostConfig": {
            "NetworkMode": "default",
            "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
            "LogConfig": {"Type": "", "Config": {}},
            "OomKillDisable": False,
            "PidsLimit": None,
            "ConsoleSize": [24, 80],
            "Isolation": "",
            "CgroupnsMode": "",
            "IpcMode": "",
        },
    }
    o = translate(body, "web")
    assert o["name"] == "web" and o["cmd"] == ["echo", "hi"] and "entrypoint" not in o
    assert o["network"] == "bridge" and "restart" not in o
    assert o["stdin_once"] is False  # a tty keeps its stdin open, as with docker
    opts = CreateOptions.parse(o)
    assert opts.user == "nobody" and opts.labels == {"k": "v"} and opts.tty and opts.open_stdin
    assert translate({"Image": "b", "Entrypoint": [""]}, None)["entrypoint"] == ""


def test_ports_binds_volumes_mounts_tmpfs(tmp_path: object) -> None:
    body = {
        "Image": "busybox",
        "Volumes": {"/anon": {}, "/data": {}},
        "HostConfig": {
            "Binds": ["/tmp:/data:ro"],
            "PortBindings": {
                "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
                "443/tcp": None,
            },
            "Mounts": [
                {"Type": "tmpfs", "Target": "/run", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 0o1777}},
                {"Type": "volume", "Source": "named", "Target": "/v", "ReadOnly": True},
            ],
            "Tmpfs": {"/scratch": "size=1m"},
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2},
        },
    }
    o = translate(body, None)
    assert o["ports"] == ["8080:80/tcp", "127.0.0.1::53/udp", "443/tcp"]
    # /data is the bind's, not a volume; read-only recursively (API 1.44 on)
    assert o["volumes"] == ["/tmp:/data:ro,rro", "/anon"]
    assert translate(body, None, (1, 43))["volumes"] == ["/tmp:/data:ro", "/anon"]
    assert o["mounts"][0] == {
        "type": "tmpfs",
        "target": "/run",
        "source": "tmpfs",
        "readonly": False,
        "options": ["size=1048576", "mode=1777"],
    }
    assert o["tmpfs"] == ["/scratch:size=1m"] and o["restart"] == "on-failure:2"
    opts = CreateOptions.parse(o)
    assert {m.target for m in opts.mounts} == {"/data", "/anon", "/run", "/v", "/scratch"}
    assert [(p["host_port"], p["container_port"]) for p in opts.ports] == [(8080, 80), (0, 53), (0, 443)]


@pytest.mark.parametrize(
    ("host_config", "named"),
    [
        ({"UsernsMode": "private"}, "--userns"),
        ({"DeviceRequests": [{"Count": -1, "Capabilities": [["gpu"]]}]}, "--gpus"),
        ({"Mounts": [{"Type": "volume", "Target": "/v", "VolumeOptions": {"Subpath": "x"}}]}, "Subpath"),
        ({"LogConfig": {"Type": "syslog"}}, "LogConfig.Type"),
        ({"Runtime": "crun"}, "runtime"),
        ({"Isolation": "hyperv"}, "isolation"),
        ({"StorageOpt": {"size": "1G"}}, "--storage-opt"),
        ({"CpuRealtimeRuntime": 950000}, "real-time"),
        ({"IOMaximumIOps": 10}, "--io-maxiops"),
        ({"CgroupnsMode": "other"}, "--cgroupns"),
        ({"UTSMode": "host", "NetworkMode": "container:x"}, "--uts host"),
        ({"Links": ["a:b"], "NetworkMode": "host"}, "--link"),
        ({"DeviceCgroupRules": ["x 1:2 rwm"]}, "device cgroup rule"),
        ({"BlkioDeviceReadBps": [{"Path": "/dev/null", "Rate": 1}]}, "not a block device"),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(host_config: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        CreateOptions.parse(translate({"Image": "busybox", "HostConfig": host_config}, None))
    assert named in e.value.message


def test_run_flags_of_the_gap_list() -> None:
    """UTSMode, CgroupnsMode, Links (docker's /name:/me/alias form), MacAddress (Config's
    and an endpoint's), the blkio lists, OOM, swappiness, device rules, annotations; the
    Windows-only and deprecated ones discarded with docker's warnings."""
    block = next((d for d in ("/dev/loop0", "/dev/vda", "/dev/sda") if os.path.exists(d)), None)
    hc: dict[str, object] = {
        "UTSMode": "host",
        "CgroupnsMode": "private",
        "Links": ["/web:/me/db"],
        "OomKillDisable": True,
        "Memory": 64 << 20,
        "MemorySwappiness": -1,
        "KernelMemory": 1 << 20,
        "CpuCount": 2,
        "DeviceCgroupRules": ["c 1:3 mr", "a *:* rwm"],
        "Annotations": {"io.x": "1"},
        "Runtime": "runc",
        "Isolation": "default",
    }
    if block:
        hc["BlkioDeviceWriteIOps"] = [{"Path": block, "Rate": 100}]
    o = CreateOptions.parse(
        translate({"Image": "b", "MacAddress": "02:42:AC:11:00:09", "HostConfig": hc}, None)
    )
    assert (o.uts, o.cgroupns, o.links, o.mac_address) == ("host", "private", ["web:db"], "02:42:ac:11:00:09")
    assert o.device_cgroup_rules == ["c 1:3 mr", "a *:* rwm"] and o.annotations == {"io.x": "1"}
    assert o.memory_swappiness is None  # -1: docker's unset
    assert any("kernel memory" in w for w in o.warnings) and any("CPU count" in w for w in o.warnings)
    if block:
        assert o.device_write_iops == [f"{block}:100"]
    ep = {"Image": "b", "NetworkingConfig": {"EndpointsConfig": {"n": {"MacAddress": "02:00:00:00:00:01"}}}}
    assert CreateOptions.parse(translate(ep, None)).mac_address == "02:00:00:00:00:01"
    ep["NetworkingConfig"] = {"EndpointsConfig": {"bridge": {"MacAddress": "02:00:00:00:00:02"}}}
    assert CreateOptions.parse(translate(ep, None)).mac_address == "02:00:00:00:00:02"


def test_networking_config() -> None:
    one = {
        "Image": "b",
        "HostConfig": {"NetworkMode": "default"},
        "NetworkingConfig": {"EndpointsConfig": {"appnet": {"Aliases": ["web"]}}},
    }
    o = translate(one, None)
    assert o["network"] == "appnet" and o["network_aliases"] == ["web"]
    two = {"Image": "b", "NetworkingConfig": {"EndpointsConfig": {"a": {}, "b": {}}}}
    o = translate(two, None)
    assert o["network"] == "a" and o["networks"] == ["b"]
    on_bridge = {"Image": "b", "NetworkingConfig": {"EndpointsConfig": {"bridge": {"Aliases": ["x"]}}}}
    assert "network_aliases" not in translate(on_bridge, None)
    fixed = {
        "Image": "b",
        "NetworkingConfig": {"EndpointsConfig": {"a": {"IPAMConfig": {"IPv4Address": "10.0.0.5"}}}},
    }
    assert translate(fixed, None)["ip"] == "10.0.0.5"
    second = {
        "Image": "b",
        "NetworkingConfig": {
            "EndpointsConfig": {"a": {}, "c": fixed["NetworkingConfig"]["EndpointsConfig"]["a"]}
        },
    }  # type: ignore[index]
    with pytest.raises(InvalidArgument, match="IPv4Address"):
        translate(second, None)
    hc = translate(
        {
            "Image": "b",
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 2_000_000_000, "StartInterval": 10**9},
        },
        None,
    )
    assert hc["healthcheck"]["test"] == ["CMD", "true"] and hc["healthcheck"]["interval"] == 2.0
    assert hc["healthcheck"]["start_interval"] == 1.0
    assert translate({"Image": "b", "Healthcheck": {"Test": ["NONE"]}}, None)["no_healthcheck"] is True
    with pytest.raises(InvalidArgument, match="Healthcheck.Interval"):
        translate({"Image": "b", "Healthcheck": {"Test": ["CMD", "true"], "Interval": "5s"}}, None)


def test_run_flags_docker_fields() -> None:
    """The Docker API's fields of the run flags (issue 12 A4) become podkit's options."""
    body = {
        "Image": "busybox",
        "ExposedPorts": {"7000/tcp": {}, "7001/udp": {}},
        "HostConfig": {
            "PublishAllPorts": True,
            "PidMode": "host",
            "IpcMode": "container:other",
            "Sysctls": {"net.ipv4.ip_forward": "1"},
            "GroupAdd": ["staff", "1234"],
            "MemoryReservation": 16 << 20,
            "Memory": 64 << 20,
            "MemorySwap": 128 << 20,
            "CpusetCpus": "0",
            "VolumesFrom": ["data:ro"],
            "Mounts": [
                {"Type": "bind", "Source": "/tmp", "Target": "/b", "BindOptions": {"Propagation": "rslave"}},
                {"Type": "volume", "Source": "v", "Target": "/v", "VolumeOptions": {"NoCopy": True}},
            ],
        },
    }
    o = translate(body, None)
    assert o["publish_all"] is True and o["expose"] == ["7000/tcp", "7001/udp"]
    assert (o["pid"], o["ipc"]) == ("host", "container:other")
    assert o["group_add"] == ["staff", 1234] and o["volumes_from"] == ["data:ro"]
    opts = CreateOptions.parse(o)
    assert opts.sysctls == {"net.ipv4.ip_forward": "1"} and opts.memory_reservation == 16 << 20
    assert [m.options for m in opts.mounts] == [["rslave"], ["nocopy"]]
    bad_opt = {
        "Type": "volume",
        "Target": "/v",
        "VolumeOptions": {"DriverConfig": {"Options": {"type": "nfs"}}},
    }
    with pytest.raises(InvalidArgument, match="takes no options"):
        translate({"Image": "b", "HostConfig": {"Mounts": [bad_opt]}}, None)
    with pytest.raises(InvalidArgument, match="--network host"):
        CreateOptions.parse(
            translate({"Image": "b", "HostConfig": {"NetworkMode": "host", "Sysctls": {"net.a": "1"}}}, None)
        )


def test_version_steps_of_the_create_body() -> None:
    """What each API version means by the same fields (docs/docker.md, "API versions")."""
    hc = {"Image": "b", "Healthcheck": {"Test": ["CMD", "true"], "StartInterval": 2 * 10**9}}
    assert translate(hc, None, (1, 44))["healthcheck"]["start_interval"] == 2.0
    assert "start_interval" not in translate(hc, None, (1, 43))["healthcheck"]  # 1.44's field
    two = {"Image": "b", "NetworkingConfig": {"EndpointsConfig": {"a": {}, "b": {}}}}
    with pytest.raises(InvalidArgument, match="multiple network endpoints: a, b"):
        translate(two, None, (1, 43))
    # Config.MacAddress: the container's MAC before 1.44; an endpoint's alone is ignored then
    ep = {
        "Image": "b",
        "NetworkingConfig": {"EndpointsConfig": {"bridge": {"MacAddress": "02:00:00:00:00:03"}}},
    }
    assert "mac_address" not in translate(ep, None, (1, 43))
    assert translate(ep, None, (1, 44))["mac_address"] == "02:00:00:00:00:03"
    old = {"Image": "b", "MacAddress": "02:00:00:00:00:04", "HostConfig": {"NetworkMode": "default"}}
    assert translate(old, None, (1, 41))["mac_address"] == "02:00:00:00:00:04"
    with pytest.raises(InvalidArgument, match="conflicting options: mac-address and the network mode"):
        translate({**old, "HostConfig": {"NetworkMode": "host"}}, None, (1, 43))
    warnings: list[str] = []
    assert translate(old, None, (1, 50), warnings)["mac_address"] == "02:00:00:00:00:04"
    assert warnings == [
        "The container-wide MacAddress field is now deprecated. "
        "It should be specified in EndpointsConfig instead."
    ]
    clash = {**old, "NetworkingConfig": {"EndpointsConfig": {"default": {"MacAddress": "02:00:00:00:00:05"}}}}
    with pytest.raises(InvalidArgument, match="must match the endpoint-specific MAC address"):
        translate(clash, None, (1, 44))
    # Mounts: the fields of later versions are refused to older clients, as dockerd's
    sub = {"Type": "volume", "Source": "v", "Target": "/v", "VolumeOptions": {"Subpath": "x"}}
    with pytest.raises(InvalidArgument, match="Subpath needs API v1.45"):
        translate({"Image": "b", "HostConfig": {"Mounts": [sub]}}, None, (1, 44))
    image = {"Type": "image", "Source": "busybox", "Target": "/i"}
    with pytest.raises(InvalidArgument, match='Mount type "Image" needs API v1.48'):
        translate({"Image": "b", "HostConfig": {"Mounts": [image]}}, None, (1, 47))
    got = translate({"Image": "b", "HostConfig": {"Mounts": [image]}}, None, (1, 48))["mounts"][0]
    assert (got["type"], got["source"], got["readonly"]) == ("image", "busybox", True)
    with pytest.raises(InvalidArgument, match="ImageOptions.Subpath"):
        sub_img = {**image, "ImageOptions": {"Subpath": "bin"}}
        translate({"Image": "b", "HostConfig": {"Mounts": [sub_img]}}, None)
    with pytest.raises(InvalidArgument, match="the source is an image ID"):
        CreateOptions.parse(
            {"image": "b", "mounts": [{"type": "image", "source": "busybox", "target": "/i"}]}
        )
    force = {"Type": "bind", "Source": "/tmp", "Target": "/t", "ReadOnly": True}
    force["BindOptions"] = {"ReadOnlyForceRecursive": True}
    with pytest.raises(InvalidArgument, match="ReadOnlyForceRecursive needs API v1.44"):
        translate({"Image": "b", "HostConfig": {"Mounts": [force]}}, None, (1, 43))
    assert translate({"Image": "b", "HostConfig": {"Mounts": [force]}}, None)["mounts"][0]["options"] == [
        "rro"
    ]
    flat = {**force, "BindOptions": {"ReadOnlyNonRecursive": True}}
    assert translate({"Image": "b", "HostConfig": {"Mounts": [flat]}}, None)["mounts"][0]["options"] == []
    with pytest.raises(InvalidArgument, match="BindOptions must not be specified on mount type 'volume'"):
        translate({"Image": "b", "HostConfig": {"Mounts": [{**sub, "BindOptions": {}}]}}, None)
    tmpfs = {"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"Options": [["exec"]]}}
    assert translate({"Image": "b", "HostConfig": {"Mounts": [tmpfs]}}, None)["mounts"][0]["options"] == [
        "exec"
    ]
    assert (
        translate({"Image": "b", "HostConfig": {"Mounts": [tmpfs]}}, None, (1, 45))["mounts"][0]["options"]
        == []
    )
    with pytest.raises(InvalidArgument, match="invalid option: size"):
        bad = {**tmpfs, "TmpfsOptions": {"Options": [["size", "1m"]]}}
        translate({"Image": "b", "HostConfig": {"Mounts": [bad]}}, None)
    vd = {
        "Image": "b",
        "HostConfig": {"VolumeDriver": "local", "Mounts": [{"Type": "volume", "Target": "/v"}]},
    }
    warnings = []
    translate(vd, None, (1, 48), warnings)
    assert warnings and "volume-driver configuration is ignored" in warnings[0]
    warnings = []
    translate(vd, None, (1, 47), warnings)
    assert warnings == []


def test_version_steps_of_networking() -> None:
    """GwPriority (1.48), per-endpoint sysctls (1.46) and interface sysctls (refused 1.48)."""
    eps = {"a": {"GwPriority": 0}, "b": {"GwPriority": 5}}
    body = {"Image": "b", "HostConfig": {"NetworkMode": "a"}, "NetworkingConfig": {"EndpointsConfig": eps}}
    o = translate(body, None, (1, 48))
    assert o["gw_priority"] == {"b": 5} and CreateOptions.parse(o).gw_priority == {"b": 5}
    assert "gw_priority" not in translate(body, None, (1, 47))  # before 1.48 the field is not read
    with pytest.raises(InvalidArgument, match="not one of the container's networks"):
        CreateOptions.parse({"image": "b", "network": "a", "gw_priority": {"c": 1}})
    opt = {"com.docker.network.endpoint.sysctls": "net.ipv4.conf.IFNAME.log_martians=1"}
    one = {"Image": "b", "NetworkingConfig": {"EndpointsConfig": {"bridge": {"DriverOpts": opt}}}}
    assert translate(one, None)["sysctls"] == {"net.ipv4.conf.eth0.log_martians": "1"}
    assert "sysctls" not in translate(one, None, (1, 45))
    top = {"Image": "b", "HostConfig": {"Sysctls": {"net.ipv4.conf.eth0.log_martians": "1"}}}
    with pytest.raises(InvalidArgument, match="must be supplied using driver option"):
        translate(top, None, (1, 48))
    assert translate(top, None, (1, 47))["sysctls"] == {"net.ipv4.conf.eth0.log_martians": "1"}


@pytest.mark.root
def test_subpath_staging_is_confined_and_released(tmp_path: Path) -> None:
    """VolumeOptions.Subpath's staging mount (podkit.containers.subpaths): a lookup
    confined to the volume, and what a crash left is released by recovery's sweep."""
    from podkit.containers import subpaths
    from podkit.snapshots.mount import is_mountpoint

    vol, state = tmp_path / "vol", tmp_path / "state"
    (vol / "a").mkdir(parents=True)
    (vol / "a" / "f").write_text("in")
    (vol / "out").symlink_to("/etc")
    staged = subpaths.stage(state, "c1", 0, vol, "a", "v")
    try:
        assert (staged / "f").read_text() == "in" and is_mountpoint(staged)
        with pytest.raises(InvalidArgument, match="subpath 'out/passwd': No such file"):
            subpaths.stage(state, "c1", 1, vol, "out/passwd", "v")  # /etc inside the volume: none
        with pytest.raises(InvalidArgument, match="relative path inside the volume"):
            subpaths.check("../x")
    finally:
        subpaths.release_all(state)
    assert not is_mountpoint(staged) and not (state / "subpaths" / "c1").exists()
    assert (vol / "a" / "f").read_text() == "in"  # released, never deleted through
    # podkit run --mount takes it too (the same option on the mount)
    o = CreateOptions.parse({"image": "b", "mounts": ["type=volume,src=v,dst=/d,volume-subpath=a/b"]})
    assert o.mounts[0].options == ["subpath=a/b"]
    with pytest.raises(InvalidArgument, match="relative path inside the volume"):
        CreateOptions.parse({"image": "b", "mounts": ["type=volume,src=v,dst=/d,volume-subpath=../x"]})

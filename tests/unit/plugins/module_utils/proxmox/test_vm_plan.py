"""proxmox_vm's decisions: options, normalised configs and their diff, encodings, sizes, host keys, actions."""

from __future__ import annotations

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.proxmox import vm_plan as pvm
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import ProxmoxError

TAG = "nerv-site-demo"


def params(**changes):
    values = {
        "name": "cp1",
        "vmid": 101,
        "node": "pve1",
        "site": "demo",
        "state": "present",
        "template": "nixos-base",
        "full": True,
        "storage": None,
        "pool": None,
        "cores": None,
        "memory": None,
        "disk": None,
        "tags": None,
        "description": None,
        "onboot": None,
        "ciuser": None,
        "sshkeys": None,
        "ipconfig0": None,
        "nameserver": None,
        "searchdomain": None,
        "cidr": None,
        "wait_timeout": 300,
        "force": False,
        "lock_timeout": 60,
    }
    values.update(changes)
    return values


# ---------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"vmid": 99}, ["vmid 99", "100..999999999"]),
        ({"vmid": 1000000000}, ["vmid 1000000000"]),
        ({"name": "cp_1"}, ["name 'cp_1'", "DNS name"]),
        ({"site": "my site"}, ["site 'my site'"]),
        ({"tags": ["ok", "no;way"]}, ["tags: 'no;way'"]),
        ({"tags": ["-lead"]}, ["tags: '-lead'"]),
        ({"cores": 0}, ["cores must be at least 1"]),
        ({"memory": 8}, ["memory must be at least 16"]),
        ({"ipconfig0": "10.0.0.11/24"}, ["ipconfig0", "ip=10.0.0.11/24,gw=10.0.0.1"]),
        ({"ipconfig0": "ip=10.0.0.11,gw=10.0.0.1"}, ["ipconfig0", "no prefix length"]),
        ({"ipconfig0": "ip=dhcp,gw=10.0.0.1"}, ["gw needs a static ip"]),
        ({"ipconfig0": "ip=10.0.0.11/24,gw=10.0.0"}, ["ipconfig0"]),
        ({"ipconfig0": "ip=10.0.0.11/24,foo=1"}, ["ipconfig0"]),
        ({"full": False, "storage": "local-lvm"}, ["storage is only for full clones"]),
        ({"sshkeys": ["ssh-ed25519 AAAA a", "  "]}, ["sshkeys holds an empty key"]),
        ({"cidr": ["10.0.0.0/33"]}, ["cidr: '10.0.0.0/33'"]),
        ({"lock_timeout": -1}, ["lock_timeout must be 0 or more"]),
    ],
)
def test_bad_options_are_refused_naming_the_option(changes, words):
    with pytest.raises(ProxmoxError) as caught:
        pvm.check_options(params(**changes))
    for word in words:
        assert word in caught.value.message


@pytest.mark.parametrize(
    "text", ["ip=dhcp", "ip=10.0.0.11/24,gw=10.0.0.1", "ip6=auto", "ip=10.0.0.11/24,ip6=fd00::11/64,gw6=fd00::1"]
)
def test_good_ipconfig0_shapes_pass(text):
    assert pvm.parse_ipconfig(text)


def test_good_options_pass_unchanged():
    good = params(tags=["k8s-worker", "a+b.c_d"], ipconfig0="ip=dhcp", cidr=["10.0.0.0/24"], sshkeys=["k"])
    assert pvm.check_options(good) is good


# ---------------------------------------------------------------- encodings and sizes


def test_sshkeys_are_strictly_percent_encoded_and_compared_decoded():
    keys = ["ssh-ed25519 AAAA+b/c= me@laptop", "ssh-rsa BBBB you@desk"]
    encoded = pvm.encode_sshkeys(keys)
    assert encoded == "ssh-ed25519%20AAAA%2Bb%2Fc%3D%20me%40laptop%0Assh-rsa%20BBBB%20you%40desk"
    assert "+" not in encoded and " " not in encoded and "\n" not in encoded
    assert pvm.decode_sshkeys(encoded) == keys
    assert pvm.decode_sshkeys(encoded + "%0A%0A") == keys, "blank lines do not count"
    assert pvm.decode_sshkeys(None) == []


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("local-lvm:vm-101-disk-0,iothread=1,size=32G", 32 * 1024**3),
        ("size=32G", 32 * 1024**3),
        ("40G", 40 * 1024**3),
        ("512M", 512 * 1024**2),
        ("1.5T", int(1.5 * 1024**4)),
        ("1024", 1024),
        ("64k", 64 * 1024),
    ],
)
def test_disk_sizes_parse(text, size):
    assert pvm.parse_size(text) == size


@pytest.mark.parametrize("text", ["local-lvm:vm-101-disk-0", "lots", "12X"])
def test_unreadable_sizes_are_errors(text):
    with pytest.raises(ProxmoxError):
        pvm.parse_size(text)


def test_a_disk_grows_never_shrinks():
    config = {"scsi0": "local-lvm:vm-101-disk-0,size=32G"}
    assert pvm.disk_change(config, None) is None
    assert pvm.disk_change(config, 32) is None
    assert pvm.disk_change(config, 40) == (32 * pvm.GIB, 40 * pvm.GIB)
    with pytest.raises(ProxmoxError) as caught:
        pvm.disk_change(config, 16)
    assert "never shrunk" in caught.value.message and "set disk to 32 or more" in caught.value.message
    with pytest.raises(ProxmoxError, match="no scsi0"):
        pvm.disk_change({}, 16)


def test_memory_reads_both_forms():
    assert pvm.memory_of("2048") == 2048 and pvm.memory_of(4096) == 4096
    assert pvm.memory_of("current=8192") == 8192 and pvm.memory_of(None) is None


# ---------------------------------------------------------------- normalising and diffing


def test_a_config_that_matches_the_options_gives_no_changes():
    config = {
        "cores": 2,
        "memory": "current=4096",
        "tags": f"k8s-worker;{TAG}",
        "description": "worker\n",
        "onboot": 1,
        "ciuser": "admin",
        "sshkeys": pvm.encode_sshkeys(["ssh-ed25519 AAAA me"]),
        "ipconfig0": "gw=10.0.0.1,ip=10.0.0.12/24",
        "nameserver": "10.0.0.1 10.0.0.2",
        "searchdomain": "lab.example",
    }
    wanted = params(
        cores=2,
        memory=4096,
        tags=["k8s-worker"],
        description="worker",
        onboot=True,
        ciuser="admin",
        sshkeys=["ssh-ed25519 AAAA me"],
        ipconfig0="ip=10.0.0.12/24,gw=10.0.0.1",
        nameserver="10.0.0.1,10.0.0.2",
        searchdomain="lab.example",
    )
    assert pvm.config_changes(config, wanted) == ({}, [], {}, {})


def test_only_the_keys_that_differ_are_sent_in_pve_form():
    config = {"cores": "2", "memory": "2048", "tags": "nerv-template;nerv-build-0a1b;nerv-phase-template;keep"}
    wanted = params(cores=4, memory=2048, onboot=False, sshkeys=["ssh-ed25519 A+B me"], ipconfig0="ip=dhcp")
    updates, changed, before, after = pvm.config_changes(config, wanted)
    assert updates == {
        "cores": 4,
        "tags": f"keep;{TAG}",
        "sshkeys": "ssh-ed25519%20A%2BB%20me",
        "ipconfig0": "ip=dhcp",
    }
    assert changed == ["cores", "tags", "sshkeys", "ipconfig0"], "onboot off and unset are the same"
    assert before == {
        "cores": 2,
        "tags": ["keep", "nerv-build-0a1b", "nerv-phase-template", "nerv-template"],
        "sshkeys": [],
        "ipconfig0": None,
    }
    assert after == {"cores": 4, "tags": ["keep", TAG], "sshkeys": ["ssh-ed25519 A+B me"], "ipconfig0": "ip=dhcp"}


def test_given_tags_replace_the_others_and_the_site_tag_is_always_there():
    config = {"tags": "old;" + TAG}
    assert pvm.config_changes(config, params(tags=[]))[0] == {"tags": TAG}
    assert pvm.config_changes(config, params())[0] == {}
    assert pvm.config_changes({}, params())[0] == {"tags": TAG}


def test_onboot_is_sent_as_0_or_1():
    assert pvm.config_changes({"tags": TAG}, params(onboot=True))[0] == {"onboot": 1}
    assert pvm.config_changes({"tags": TAG, "onboot": 1}, params(onboot=False))[0] == {"onboot": 0}


# ---------------------------------------------------------------- whose VM, which template


def test_ownership():
    ours = {"vmid": 101, "name": "cp1", "tags": f"k8s;{TAG}", "type": "qemu"}
    pvm.check_ownership(ours, params())
    with pytest.raises(ProxmoxError, match="without the tag nerv-site-demo.*interrupted run"):
        pvm.check_ownership(dict(ours, tags="k8s"), params())
    with pytest.raises(ProxmoxError, match="not 'worker1'"):
        pvm.check_ownership(ours, params(name="worker1"))
    with pytest.raises(ProxmoxError, match="template"):
        pvm.check_ownership(dict(ours, template=1), params())
    with pytest.raises(ProxmoxError, match="without the tag"):
        pvm.check_ownership(dict(ours, tags="nerv-site-other"), params())


def test_templates_are_found_by_name_or_vmid_and_must_be_one():
    resources = [
        {"vmid": 9000, "name": "nixos-base", "template": 1, "node": "pve1"},
        {"vmid": 9001, "name": "nixos-base", "template": 1, "node": "pve1"},
        {"vmid": 9100, "name": "other", "template": 1, "node": "pve2"},
        {"vmid": 101, "name": "cp1", "template": 0, "node": "pve1"},
    ]
    assert pvm.find_template(resources, "other")["vmid"] == 9100
    assert pvm.find_template(resources, "9001")["vmid"] == 9001
    with pytest.raises(ProxmoxError, match="several templates .vmids 9000, 9001."):
        pvm.find_template(resources, "nixos-base")
    with pytest.raises(ProxmoxError, match="not found"):
        pvm.find_template(resources, "missing")
    with pytest.raises(ProxmoxError, match="is not a template"):
        pvm.find_template(resources, "101")
    with pytest.raises(ProxmoxError, match="template is required"):
        pvm.find_template(resources, None)


def test_the_clone_request():
    template = {"vmid": 9000, "node": "pve1"}
    assert pvm.clone_request(params(storage="ssd", pool="lab"), template) == {
        "newid": 101,
        "name": "cp1",
        "full": 1,
        "storage": "ssd",
        "target": "pve1",
        "pool": "lab",
        # from its first request the clone says whose it is, before any config write tags it
        "description": "nerv.homelab clone of vmid 9000 for host cp1 of site demo",
    }
    assert "storage" not in pvm.clone_request(params(full=False, storage="ssd"), template)


def test_a_clone_whose_answer_was_lost_is_ours_only_by_its_marker():
    marker = pvm.clone_marker(params(), {"vmid": 9000, "name": "nixos-base"})
    assert marker == "nerv.homelab clone of nixos-base for host cp1 of site demo"
    assert pvm.is_our_clone(marker, params())
    assert pvm.is_our_clone(marker + "\nmore", params())
    assert not pvm.is_our_clone(marker, params(name="worker1")), "another host's clone"
    assert not pvm.is_our_clone(marker.replace("site demo", "site other"), params()), "another site's"
    assert not pvm.is_our_clone(marker.replace("site demo", "site demo2"), params())
    assert not pvm.is_our_clone("cp1 of site demo", params()) and not pvm.is_our_clone(None, params())
    untagged = {"vmid": 101, "name": "cp1", "tags": "k8s", "type": "qemu"}
    pvm.check_ownership(untagged, params(), our_clone=True)
    with pytest.raises(ProxmoxError, match="without the tag"):
        pvm.check_ownership(dict(untagged, name="other"), params(), our_clone=True)


def test_lock_and_transient_errors_are_recognised():
    assert pvm.is_lock_error(ProxmoxError("VM is locked (backup)"))
    assert pvm.is_lock_error("can't lock file '/var/lock/qemu-server/lock-101.conf' - got timeout")
    assert not pvm.is_lock_error(ProxmoxError("VM quit/powerdown failed - got timeout"))
    assert pvm.is_transient(ProxmoxError("x", status=596)) and not pvm.is_transient(ProxmoxError("x", status=500))


# ---------------------------------------------------------------- host key


def test_host_key_lines():
    assert pvm.host_key_of({"content": "ssh-ed25519 AAAAkey root@cp1\n"}) == "ssh-ed25519 AAAAkey"
    assert pvm.host_key_of({"content": ""}) is None
    assert pvm.host_key_of({"content": "ssh-rsa AAAA x"}) is None
    assert pvm.host_key_of(None) is None


# ---------------------------------------------------------------- actions


@pytest.mark.parametrize(
    ("state", "exists", "status", "updates", "resize", "protected", "actions"),
    [
        ("present", False, None, True, True, False, ["clone", "config", "resize"]),
        ("present", True, "running", False, False, False, []),
        ("started", False, None, True, False, False, ["clone", "config", "start"]),
        ("started", True, "running", False, False, False, []),
        ("started", True, "stopped", False, False, False, ["start"]),
        ("stopped", True, "running", True, False, False, ["config", "stop"]),
        ("stopped", True, "stopped", False, False, False, []),
        ("stopped", False, None, True, False, False, ["clone", "config"]),
        ("absent", False, None, False, False, False, []),
        ("absent", True, "stopped", False, False, False, ["delete"]),
        ("absent", True, "running", False, False, True, ["stop", "unprotect", "delete"]),
    ],
)
def test_action_planning(state, exists, status, updates, resize, protected, actions):
    assert pvm.plan(state, exists, status, updates, resize, protected, True) == actions


def test_removal_of_a_running_or_protected_vm_needs_force():
    pvm.check_removal(params(), "stopped", False)
    pvm.check_removal(params(force=True), "running", True)
    with pytest.raises(ProxmoxError, match="running and protected.*force: true"):
        pvm.check_removal(params(), "running", True)


def test_a_protected_vm_needs_unprotect_when_it_is_set():
    pvm.check_removal(params(unprotect=True), "stopped", True)
    pvm.check_removal(params(force=True, unprotect=False), "running", False)
    with pytest.raises(ProxmoxError, match=r"is protected \(protection=1\): .*unprotect: true"):
        pvm.check_removal(params(force=True, unprotect=False), "running", True)


def test_final_status():
    assert pvm.final_status("started", "stopped", ["start"]) == "running"
    assert pvm.final_status("present", None, ["clone", "config"]) == "stopped"
    assert pvm.final_status("present", "running", []) == "running"
    assert pvm.final_status("absent", "running", ["stop", "delete"]) == "absent"


# ---------------------------------------------------------------- start surviving a 596 (the module's Vm)


class FakeClient:
    """Answers start requests from a script; records them."""

    def __init__(self, starts, statuses, task_errors=()):
        self.starts, self.statuses, self.task_errors = list(starts), list(statuses), list(task_errors)
        self.posted = []

    def post(self, path, **data):
        self.posted.append(path)
        outcome = self.starts.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def get(self, path, **params):
        assert path.endswith("/status/current")
        return {"status": self.statuses.pop(0)}

    def wait_task(self, upid):
        if self.task_errors:
            raise self.task_errors.pop(0)
        return {"exitstatus": "OK"}


def start_with(client):
    from types import SimpleNamespace

    from ansible_collections.nerv.homelab.plugins.module_utils.proxmox import vm_apply as proxmox_vm

    vm = proxmox_vm.Vm(SimpleNamespace(params=params()), client)
    vm.start()
    return vm


UPID = "UPID:pve1:00000001:00000007:00000001:qmstart:101:root@pam:"
LOST = ProxmoxError("Proxmox POST ... failed once: HTTP 596 Connection timed out", status=596)


def test_a_596_start_that_did_not_happen_is_sent_once_more():
    client = FakeClient([LOST, UPID], ["stopped"])
    vm = start_with(client)
    assert len(client.posted) == 2 and "596" in vm.warnings[0]


def test_a_596_start_that_did_happen_is_not_sent_again():
    client = FakeClient([LOST], ["running"])
    start_with(client)
    assert len(client.posted) == 1


def test_a_retried_start_that_finds_the_vm_running_is_fine():
    already = ProxmoxError("Proxmox task qmstart 101 on node pve1 failed: VM 101 already running")
    client = FakeClient([LOST, UPID], ["stopped", "running"], [already])
    start_with(client)
    assert len(client.posted) == 2


def test_other_start_errors_are_not_retried():
    client = FakeClient([ProxmoxError("HTTP 500 boom", status=500)], [])
    with pytest.raises(ProxmoxError, match="boom"):
        start_with(client)
    assert len(client.posted) == 1


def test_a_retold_error_keeps_its_details():
    error = ProxmoxError("boom", status=500, exitstatus="clone failed", log_tail=["a"], upid="UPID:x", errors={"k": 1})
    told = pvm.retold(error, "cloning failed: boom")
    assert told.message == "cloning failed: boom" and told.details == error.details


def test_a_clone_across_nodes_needs_shared_storage():
    template = {"vmid": 9000, "name": "nixos-base", "node": "pve1"}
    config = {
        "scsi0": "local-lvm:base-9000-disk-0,size=16G",
        "efidisk0": "local-lvm:base-9000-disk-1,size=528K",
        "ide2": "local-lvm:vm-9000-cloudinit,media=cdrom",
        "ide0": "local:iso/nixos.iso,media=cdrom",
        "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0",
    }
    assert pvm.disk_storages(config) == {"local-lvm"}
    storages = [{"storage": "local-lvm", "shared": 0}, {"storage": "ceph", "shared": 1}]
    pvm.cross_node_problem(template, config, params(node="pve1"), storages)
    pvm.cross_node_problem(template, config, params(node="pve2", storage="ceph"), storages)
    with pytest.raises(ProxmoxError, match="is on pve1 and node is pve2, but storage local-lvm is not shared"):
        pvm.cross_node_problem(template, config, params(node="pve2"), storages)
    with pytest.raises(ProxmoxError, match="storage local-lvm is not shared"):
        pvm.cross_node_problem(template, config, params(node="pve2", storage="local-lvm"), storages)

"""The watchdog's script and its arming on NixOS and macOS, what undoes a deploy, and waiting for the old system."""

from __future__ import annotations

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import Unreachable
from ansible_collections.nerv.homelab.plugins.module_utils.common.waiting import Deadline
from ansible_collections.nerv.homelab.plugins.module_utils.nixos import watchdog

OLD = "/nix/store/" + "a" * 32 + "-nixos-system-pi-old"
NEW = "/nix/store/" + "b" * 32 + "-nixos-system-pi-new"


def test_the_watchdog_waits_for_the_activation_then_undoes_it_unless_confirmed():
    dog = watchdog.Watchdog("nixos", "switch", OLD, 30, 600, ident="abc")
    script = dog.script()
    assert script.startswith(f'n=0; while [ "$(readlink -f /run/current-system)" = {OLD} ]; do')
    assert (
        "[ $n -gt 600 ] && exit 0" in script and "sleep 30; [ -e /run/nerv-rollback/abc.confirmed ] && exit 0" in script
    )
    assert script.endswith(
        f"nix-env -p /nix/var/nix/profiles/system --set {OLD} && {OLD}/bin/switch-to-configuration switch"
    )
    arm = dog.arm_command()
    assert arm.startswith("mkdir -p /run/nerv-rollback && rm -f /run/nerv-rollback/abc.confirmed && systemd-run")
    assert "--unit=nerv-rollback-abc" in arm and "/bin/sh -c 'n=0;" in arm
    assert dog.disarm_command() == (
        "touch /run/nerv-rollback/abc.confirmed && { systemctl stop nerv-rollback-abc.service 2>/dev/null; true; }"
    )


def test_the_darwin_watchdog_is_a_background_shell():
    dog = watchdog.Watchdog("darwin", "switch", OLD, 30, 600, ident="abc")
    assert dog.script().endswith(f"--set {OLD} && {OLD}/activate")
    arm = dog.arm_command()
    assert "systemd-run" not in arm and "|| exit 1; nohup /bin/sh -c" in arm
    assert arm.endswith("& echo $! > /run/nerv-rollback/abc.pid")
    assert "kill $(cat /run/nerv-rollback/abc.pid)" in dog.disarm_command()


def test_a_test_deploy_is_undone_without_touching_the_profile():
    assert watchdog.undo_command("nixos", "test", OLD) == f"{OLD}/bin/switch-to-configuration test"


def test_waiting_for_the_old_system_outlasts_a_host_that_does_not_answer():
    now = [0.0]

    def factory(seconds):
        return Deadline(seconds, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))

    answers = [Unreachable("down"), NEW, OLD]

    def read():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert watchdog.wait_running(read, OLD, 60, deadline_factory=factory) == OLD and now[0] == 4
    answers[:] = [Unreachable("down")] * 10
    assert watchdog.wait_running(read, OLD, 3, deadline_factory=factory) is None, "never answered"

"""docs/getting-started.md, run as a new user runs it, once for every site shipped under inventory/.

Each site is taken through the guide for its kind (a site with a proxmox section through "A Proxmox site", the others
through "A bare-metal site"), its name in place of the example's: a fresh copy of the repository, a fresh home, the
setup commands, the copy of the site, the edits the guide asks for (the user's age recipient and SSH key; for
Proxmox, the URL and CA of the cluster, here fakepve shaped like the site and playing its guests), then the guide's
commands as written. It all runs in a network namespace that reaches nothing but its loopback: no host, GitHub or
nixpkgs answers, as on a controller whose machines are not up yet, and every step must say so rather than fail or
wait. Two additions to the guide, both said in it: the real runs leave out install and bootstrap (they need the
installed machines) and take a stand-in ISO (Nix cannot build the real one without nixpkgs). A site added under
inventory/ is covered without editing this file.
"""

from __future__ import annotations

import re
import secrets
import uuid
from pathlib import Path

import pytest
import yaml
from fakepve_site import SiteFake, write_state

from .._docs import Command, Session, copy_repository, offline_namespace, sections
from .._netns import inside
from .._sites import REPO, site_dirs
from .._skips import require_commands, require_netns

GUIDE = REPO / "docs" / "getting-started.md"
PROXMOX, BAREMETAL, SETUP = "A Proxmox site", "A bare-metal site", "What the controller needs"
EXAMPLES = {PROXMOX: "example-proxmox", BAREMETAL: "example-baremetal"}
REAL_RUN_EXTRA = "--skip-tags install,bootstrap"
TOKEN_PLACEHOLDER = "<the API token secret>"


def site_data(site: Path) -> dict:
    return yaml.safe_load((site / "site.yml").read_text())


def guide_for(site: Path) -> str:
    return PROXMOX if "proxmox" in site_data(site) else BAREMETAL


def test_every_kind_of_site_the_guide_describes_is_shipped():
    """Both halves of the guide run only if a site of each kind is shipped; the guide has the sections this reads."""
    guides = {guide_for(site) for site in site_dirs()}
    assert guides == {PROXMOX, BAREMETAL}, f"shipped sites cover only {guides}"
    found = sections(GUIDE.read_text())
    for title in (SETUP, PROXMOX, BAREMETAL):
        assert found.get(title), f"getting-started has no commands under '## {title}'"
    for title, example in EXAMPLES.items():
        assert any(f"inventory/{example} " in c.text for c in found[title]), f"'{title}' does not copy {example}"


def files_of(directory: Path) -> dict:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


class Guide:
    """One site taken through the guide in a user's session."""

    def __init__(self, tmp_path: Path, namespace: str, site: Path):
        self.site, self.guide = site, guide_for(site)
        self.root = copy_repository(tmp_path / "checkout")
        self.session = Session(self.root, tmp_path / "home", namespace,
                               {"ANSIBLE_ASYNC_DIR": str(tmp_path / "async")})  # fmt: skip
        self.namespace, self.fake, self.secret = namespace, None, secrets.token_hex(16)
        self.site_dir: Path | None = None
        self.fake_dir = tmp_path / "fake"

    def command(self, text: str) -> str:
        """The guide's command for this site: its name for the example's, its token variable for the default."""
        text = text.replace(f"inventory/{EXAMPLES[self.guide]} ", f"inventory/{self.site.name} ")
        if text.startswith("export PROXMOX_TOKEN_SECRET="):
            variable = site_data(self.site)["proxmox"].get("token_secret_env", "PROXMOX_TOKEN_SECRET")
            text = f"export {variable}={self.secret}"
        return text

    def edit_site(self, recipient: str) -> None:
        """What the guide asks the user to edit: their keys, and for Proxmox where their cluster answers."""
        site_file = self.site_dir / "site.yml"
        site = yaml.safe_load(site_file.read_text())
        site["sops"]["admin_recipients"] = [recipient]
        site["admin_ssh_keys"] = [(self.session.home / ".ssh" / "id_ed25519.pub").read_text().strip()]
        if "proxmox" in site:
            self.fake_dir.mkdir()
            with inside(self.namespace):  # the fake's server and its loop thread live in the user's namespace
                self.fake = SiteFake(site, self.secret, self.fake_dir, host="127.0.0.1", port=0)
            write_state(site, self.fake, self.fake_dir)
            site["proxmox"].update(url=self.fake.pve.url, ca_path=self.fake.cafile)
        site_file.write_text(yaml.safe_dump(site, sort_keys=False))

    def real_run_extra(self) -> str:
        if self.fake is None:
            return REAL_RUN_EXTRA
        iso = self.fake_dir / "installer.iso"
        return f"{REAL_RUN_EXTRA} -e proxmox_template_iso={iso} -e proxmox_template_progress_every=2"

    def writes(self) -> list:
        return [(m, p) for m, p, _b in self.fake.pve.requests if m != "GET"] if self.fake else []


@pytest.fixture
def user_namespace():
    require_netns()
    require_commands("ip", "age-keygen", "ssh-keygen", "git", "make")
    with offline_namespace(f"nvu{uuid.uuid4().hex[:8]}") as name:
        yield name


@pytest.mark.parametrize("site", site_dirs(), ids=lambda p: p.name)
def test_getting_started_works_for_every_shipped_site(site, tmp_path, user_namespace):
    guide = Guide(tmp_path, user_namespace, site)
    found = sections(GUIDE.read_text())
    try:
        walk(guide, found[SETUP] + found[guide.guide])
    finally:
        if guide.fake is not None:
            guide.fake.stop()


def walk(guide: Guide, steps: list) -> None:
    recipient, runs = None, []
    for step in steps:
        text = guide.command(step.text)
        if text.startswith("age-keygen -y"):
            recipient = guide.session.check(text).output.strip().splitlines()[-1]
            assert re.fullmatch(r"age1[0-9a-z]{58}", recipient), recipient
        elif text.startswith("cp -r inventory/"):
            guide.session.check(text)
            guide.site_dir = guide.root / shlex_last(text)
            guide.edit_site(recipient)
        elif text.startswith("ansible-playbook playbooks/site.yml") and "--check" in text:
            check_run(guide, text)
        elif text.startswith("ansible-playbook playbooks/site.yml"):
            runs.append(real_run(guide, text, first=not runs))
        else:
            guide.session.check(Command(text, step.shows))
    if len(runs) == 1:  # the bare-metal guide runs once; a run must change nothing the second time too
        runs.append(real_run(guide, text, first=False))
    assert runs, "the guide ran no real run"


def shlex_last(text: str) -> str:
    return text.split()[-1]


def check_run(guide: Guide, text: str) -> None:
    before = files_of(guide.site_dir)
    result = guide.session.check(text)
    assert files_of(guide.site_dir) == before, f"check mode wrote into the site\n{result.describe()}"
    assert guide.writes() == [], "check mode wrote to Proxmox"
    assert "check mode: each line below says what a real run would change" in result.output, result.describe()
    assert "FAILED - RETRYING" not in result.output and guide.secret not in result.output
    if guide.fake is not None:
        assert "check mode cannot evaluate nixosConfigurations.installer" in result.output, result.describe()
        assert "nix cannot fetch the flake's inputs" in result.output


def real_run(guide: Guide, text: str, first: bool):
    if guide.fake is not None:
        guide.fake.pve.requests.clear()
    result = guide.session.check(f"{text} {guide.real_run_extra()}")
    changed = int(re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)", result.output).group(1))
    assert guide.secret not in result.output, "the token secret was printed"
    site = site_data(guide.site)
    vms = [h["name"] for h in site["hosts"] if h["kind"] == "vm"]
    if first:
        assert changed > 0, result.describe()
        said = ["keys: ", "made: .sops.yaml, K3s token, site CA, Flux key", "install: not run", "bootstrap: not run"]
        if guide.fake is not None:
            said += [f"template: made (vmid {site['template']['vmid']})", f"vms: {', '.join(vms)} created or changed"]
            said += [f"{name} recorded" for name in vms]
    else:
        assert changed == 0, f"a run after a run changed something\n{result.describe()}"
        assert guide.writes() == [], f"a run that changes nothing wrote to Proxmox: {guide.writes()}"
        said = ["keys: nothing changed"] + (["template: unchanged", "vms: unchanged"] if guide.fake else [])
    for line in said:
        assert line in result.output, f"the summary lacks {line!r}\n{result.describe()}"
    return result

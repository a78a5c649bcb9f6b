"""The real sops binary is a working peer here: it encrypts with its own age identity and decrypts it back."""

from __future__ import annotations


def test_real_sops_round_trips_a_yaml_file(real_sops, tmp_path):
    clear = tmp_path / "secret.yaml"
    clear.write_text("token: canary-Real-Sops-1\n")
    real_sops.encrypt_for(clear)
    text = clear.read_text()
    assert "canary-Real-Sops-1" not in text and "ENC[AES256_GCM," in text and real_sops.recipient in text
    assert real_sops.decrypt(clear) == "token: canary-Real-Sops-1\n"

# sops-nix on one host. The host decrypts with its own SSH ed25519 host key, read as an age
# identity (as ssh-to-age derives it); the Ansible side made that key, added its age
# recipient to the site's .sops.yaml and re-wrapped the K3s token file for it. No other key
# is needed on the machine, and nothing secret enters the Nix store: the store holds the
# encrypted file only, decrypted at activation into /run/secrets.
#
# A host that runs Caddy also gets the site CA (the one cert-manager signs the cluster's
# certificates with), as two secrets owned by the caddy user: host.nix hands their paths to
# nerv.services.caddy.ca, and Caddy restarts when they change.
#
# Uses no lib, so tests evaluate this function with stub arguments.
{ site, host, ... }:
let
  # sops-nix looks up nested keys by '/': these are top-level keys whose names hold a dot.
  caSecret = key: {
    sopsFile = ../. + "/${site.siteCa.sopsFile}";
    inherit (site.siteCa) format;
    inherit key;
    owner = "caddy";
    group = "caddy";
    mode = "0400";
    restartUnits = [ "caddy.service" ];
  };
in
{
  sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
  # The host has no RSA key for sops-nix's GnuPG import to read.
  sops.gnupg.sshKeyPaths = [ ];

  sops.secrets = {
    k3s-token = {
      # Relative to nix/, the flake root, where the Ansible side copies the site's file.
      sopsFile = ../. + "/${site.k3s.tokenSopsFile}";
      format = site.k3s.tokenSopsFormat;
      key = site.k3s.tokenSopsKey;
    };
  }
  // (
    if host.services.caddy.enable then
      {
        "site-ca.crt" = caSecret "tls.crt";
        "site-ca.key" = caSecret "tls.key";
      }
    else
      { }
  );
}

# Checks SSH public key lines in plain Nix (builtins only, no nixpkgs), so that
# tests and `nix-instantiate --eval` can run them without fetching anything.
#
# The rules match plugins/module_utils/site/formats.py (check_ssh_public_key):
# a line is `TYPE BASE64 [comment]`, TYPE is one of `types`, and the key blob
# starts with its own type name (uint32 length + name). In base64 that start
# is a fixed prefix per type; `prefixes` holds the characters fully decided by
# those bytes, so a body of another type (or garbage) is refused.
let
  prefixes = {
    "ssh-ed25519" = "AAAAC3NzaC1lZDI1NTE5";
    "ssh-rsa" = "AAAAB3NzaC1yc2";
    "ecdsa-sha2-nistp256" = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNT";
    "ecdsa-sha2-nistp384" = "AAAAE2VjZHNhLXNoYTItbmlzdHAzOD";
    "ecdsa-sha2-nistp521" = "AAAAE2VjZHNhLXNoYTItbmlzdHA1Mj";
    "sk-ssh-ed25519@openssh.com" = "AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t";
    "sk-ecdsa-sha2-nistp256@openssh.com" = "AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb2";
  };
  types = builtins.attrNames prefixes;

  # Whitespace-separated words of a line.
  words = s: builtins.filter (w: builtins.isString w && w != "") (builtins.split "[ \t]+" s);

  startsWith = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;

  mod4 = n: n - (n / 4) * 4;

  # null when the line is a good public key, else the problem (one sentence).
  problem =
    key:
    if !(builtins.isString key) then
      "is not a string"
    else if builtins.match "[^\n\r]*" key == null then
      "spans more than one line (give one key per list item)"
    else
      let
        w = words key;
        type = builtins.head w;
        body = builtins.elemAt w 1;
      in
      if builtins.length w < 2 then
        "is not an SSH public key line (TYPE BASE64 [comment])"
      else if !(builtins.elem type types) then
        "has key type '${builtins.substring 0 40 type}', expected one of ${builtins.concatStringsSep ", " types}"
      else if builtins.match "[A-Za-z0-9+/]+={0,2}" body == null || mod4 (builtins.stringLength body) != 0 then
        "has a key body that is not valid base64"
      else if !(startsWith prefixes.${type} body) then
        "has a key body that is not a ${type} key (the body does not start with its type)"
      else if type == "ssh-ed25519" && builtins.stringLength body != 68 then
        "has an ssh-ed25519 body of ${toString (builtins.stringLength body)} characters, expected 68"
      else
        null;
in
{
  inherit prefixes types problem;

  isValid = key: problem key == null;
}

# Environment for talking to the local stack. Source it from the project root:
#
#     . stack/env.sh
#
# Plain POSIX sh on purpose: make runs recipes with /bin/sh (dash on Debian),
# and tests/CI may source it from bash with `set -eu`. So: no bashisms, every
# expansion guarded, nothing printed, no shell options changed.
#
# Values already in the environment win, so CI or a developer can point the
# services at other ports or another database without editing this file.

# The project root: the folder above this file when bash tells us where we
# are, otherwise the current directory (dash cannot know the sourced path).
if [ -n "${BASH_SOURCE:-}" ]; then
    OTP_ROOT="${OTP_ROOT:-$(cd "$(dirname "${BASH_SOURCE}")/.." && pwd)}"
else
    OTP_ROOT="${OTP_ROOT:-$(pwd)}"
fi
export OTP_ROOT

: "${OTP_KAFKA_PORT:=19092}"
: "${OTP_KAFKA_CONTROLLER_PORT:=19093}"
: "${OTP_PG_PORT:=55432}"
: "${OTP_SMTP_PORT:=2525}"
export OTP_KAFKA_PORT OTP_KAFKA_CONTROLLER_PORT OTP_PG_PORT OTP_SMTP_PORT

OTP_SECRETS_DIR="${OTP_SECRETS_DIR:-$OTP_ROOT/.secrets}"
export OTP_SECRETS_DIR

# Writes a secret only if the file does not exist yet. The content goes to a
# private temp file first and is hard-linked into place: ln refuses to replace
# an existing file, so two processes sourcing this at once cannot end up with
# different passwords or keys, and a reader never sees a half-written file.
# No trailing newline, so a plain read() of the file is the exact secret.
_otp_write_secret_once() {
    # $1 = target file, $2 = content
    [ -s "$1" ] && return 0
    (
        umask 077
        _otp_tmp="$1.tmp.$$"
        printf '%s' "$2" >"$_otp_tmp" &&
            ln "$_otp_tmp" "$1" 2>/dev/null
        rm -f "$_otp_tmp"
    )
    return 0
}

# 32 url-safe characters: base64 of 24 random bytes has no padding, and the
# tr makes it safe to embed in a postgresql:// URL without escaping.
_otp_random_urlsafe() {
    head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '\n'
}

_otp_keyring_json() {
    printf '{"active": "dev-1", "keys": {"dev-1": "%s"}}' \
        "$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
}

(umask 077 && mkdir -p "$OTP_SECRETS_DIR") && chmod 700 "$OTP_SECRETS_DIR"
_otp_write_secret_once "$OTP_SECRETS_DIR/pg_password" "$(_otp_random_urlsafe)"
for _otp_name in seal hash attempt tracking; do
    _otp_write_secret_once "$OTP_SECRETS_DIR/$_otp_name.keys" "$(_otp_keyring_json)"
done
unset _otp_name

: "${OTP_KAFKA_BOOTSTRAP:=127.0.0.1:$OTP_KAFKA_PORT}"
if [ -z "${OTP_PG_DSN:-}" ]; then
    OTP_PG_DSN="postgresql://otp:$(tr -d '\r\n' <"$OTP_SECRETS_DIR/pg_password")@127.0.0.1:$OTP_PG_PORT/otp"
fi
: "${OTP_SMTP_HOST:=127.0.0.1}"
: "${OTP_MAILDIR:=$OTP_ROOT/.stack/mail/Maildir}"
: "${OTP_SEAL_KEYS_FILE:=$OTP_SECRETS_DIR/seal.keys}"
: "${OTP_HASH_KEYS_FILE:=$OTP_SECRETS_DIR/hash.keys}"
: "${OTP_ATTEMPT_KEYS_FILE:=$OTP_SECRETS_DIR/attempt.keys}"
: "${OTP_TRACKING_KEYS_FILE:=$OTP_SECRETS_DIR/tracking.keys}"
# 0 = a free port, logged at start: several notifiers (instances, demo beside tests) may run.
: "${OTP_NOTIFIER_HTTP_PORT:=0}"
export OTP_KAFKA_BOOTSTRAP OTP_PG_DSN OTP_SMTP_HOST OTP_MAILDIR \
    OTP_SEAL_KEYS_FILE OTP_HASH_KEYS_FILE OTP_ATTEMPT_KEYS_FILE OTP_TRACKING_KEYS_FILE OTP_NOTIFIER_HTTP_PORT

unset -f _otp_write_secret_once _otp_random_urlsafe _otp_keyring_json

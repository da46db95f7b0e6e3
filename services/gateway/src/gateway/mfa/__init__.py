"""Second factors: TOTP, recovery codes and WebAuthn security keys (passkeys)."""

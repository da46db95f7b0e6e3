// The second-factor pages (gateway/mfa/pages.py): security keys through WebAuthn,
// and setting up an authenticator app. No framework; text goes in with textContent.
"use strict";

(() => {
  const root = document.getElementById("mfa");
  if (!root) return;
  const csrf = root.dataset.csrf;
  const next = root.dataset.next || "/";
  const API = "/api/v1/auth/mfa";
  // The page's language: its texts come as data-t-* attributes (web/templates/components/mfa_texts.html).
  const t = (key, english) => root.dataset[key] || english;

  const fromB64url = (text) => {
    const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  };
  const toB64url = (buffer) =>
    btoa(String.fromCharCode(...new Uint8Array(buffer)))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

  async function call(path, body) {
    const response = await fetch(API + path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.message || `the server answered ${response.status}`);
    return data;
  }

  const descriptors = (list) => (list || []).map((c) => ({ ...c, id: fromB64url(c.id) }));

  function credentialJSON(credential) {
    const r = credential.response;
    const response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      response.userHandle = r.userHandle ? toB64url(r.userHandle) : null;
    }
    return {
      id: credential.id,
      rawId: toB64url(credential.rawId),
      type: credential.type,
      response,
      clientExtensionResults: credential.getClientExtensionResults(),
    };
  }

  function say(id, text) {
    const element = document.getElementById(id);
    if (element) element.textContent = text;
  }

  function showCodes(codes) {
    if (!codes || !codes.length) return;
    const list = document.getElementById("code-list");
    list.replaceChildren(...codes.map((code) => {
      const item = document.createElement("li");
      const text = document.createElement("code");
      text.textContent = code;
      item.append(text);
      return item;
    }));
    document.getElementById("codes").hidden = false;
    // The factors the page listed when it loaded ("no second factor yet") are out of date now.
    const summary = document.getElementById("factor-summary");
    if (summary) summary.hidden = true;
  }

  // The second step of signing in: a signature by one of the account's keys.
  const useKey = document.getElementById("use-key");
  if (useKey) {
    useKey.addEventListener("click", async () => {
      useKey.disabled = true;
      say("key-status", t("tTouch", "Touch your security key …"));
      try {
        const options = await call("/webauthn/authenticate/options");
        const credential = await navigator.credentials.get({
          publicKey: { ...options, challenge: fromB64url(options.challenge),
                       allowCredentials: descriptors(options.allowCredentials) },
        });
        await call("/webauthn/authenticate", { credential: credentialJSON(credential) });
        say("key-status", t("tConfirmed", "Confirmed."));
        window.location.assign(next);
      } catch (error) {
        say("key-status", `${t("tFailed", "That did not work:")} ${error.message}`);
        useKey.disabled = false;
      }
    });
  }

  // Setting up: a new security key.
  const addKey = document.getElementById("add-key");
  if (addKey) {
    addKey.addEventListener("click", async () => {
      addKey.disabled = true;
      say("setup-status", t("tTouch", "Touch your security key …"));
      try {
        const options = await call("/webauthn/register/options");
        const credential = await navigator.credentials.create({
          publicKey: { ...options, challenge: fromB64url(options.challenge),
                       user: { ...options.user, id: fromB64url(options.user.id) },
                       excludeCredentials: descriptors(options.excludeCredentials) },
        });
        const name = document.getElementById("key-name").value || "Security key";
        const result = await call("/webauthn/register", {
          credential: credentialJSON(credential), name,
        });
        say("setup-status", t("tKeyAdded", "Your security key was added."));
        showCodes(result.recovery_codes);
      } catch (error) {
        say("setup-status", `${t("tFailed", "That did not work:")} ${error.message}`);
      }
      addKey.disabled = false;
    });
  }

  // Setting up: an authenticator app, confirmed by its first code.
  const startTotp = document.getElementById("start-totp");
  if (startTotp) {
    startTotp.addEventListener("click", async () => {
      try {
        const setup = await call("/totp");
        document.getElementById("totp-qr").src = setup.qr_svg;
        say("totp-secret", setup.secret);
        document.getElementById("totp-setup").hidden = false;
        startTotp.hidden = true;
      } catch (error) {
        say("setup-status", `${t("tFailed", "That did not work:")} ${error.message}`);
      }
    });
    document.getElementById("totp-confirm").addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const code = document.getElementById("totp-code").value;
        const result = await call("/totp/confirm", { code });
        document.getElementById("totp-setup").hidden = true;
        say("setup-status", t("tAppSet", "Your authenticator app is set up."));
        showCodes(result.recovery_codes);
      } catch (error) {
        say("setup-status", `${t("tFailed", "That did not work:")} ${error.message}`);
      }
    });
  }
})();

// The /verify-email page. The link in the mail carries its token in the
// fragment (#token=...), which a browser never sends to a server. The address
// is confirmed for the account signed in here; someone not signed in is sent
// to sign in first, and the token waits in this tab's sessionStorage.
(function () {
  "use strict";
  var KEY = "jhaas-verify-email-token";
  var status = document.getElementById("verify-status");
  var token = new URLSearchParams(window.location.hash.slice(1)).get("token");
  if (token) {
    window.sessionStorage.setItem(KEY, token);
    window.history.replaceState(null, "", window.location.pathname);
  } else {
    token = window.sessionStorage.getItem(KEY);
  }
  if (!token) {
    status.textContent = "This link is incomplete. Open the whole link from the mail.";
    return;
  }
  function cookie(name) {
    var found = document.cookie.split("; ").filter(function (part) {
      return part.indexOf(name + "=") === 0;
    })[0];
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }
  var csrf = cookie("__Host-jhaas_csrf") || cookie("jhaas_csrf");
  fetch("/api/v1/me/email/verify", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify({ token: token }),
  })
    .then(function (response) {
      if (response.status === 401) {
        status.textContent = "Sign in to the account this address is for, then come back: ";
        var link = document.createElement("a");
        link.href = "/signin?next=/verify-email";
        link.textContent = "sign in";
        status.appendChild(link);
        return null;
      }
      window.sessionStorage.removeItem(KEY);
      return response.json().then(function (body) {
        status.textContent = response.ok
          ? "Your e-mail address " + body.email + " is confirmed."
          : body.message || "The address could not be confirmed.";
      });
    })
    .catch(function () {
      status.textContent = "The gateway could not be reached; reload the page to try again.";
    });
})();

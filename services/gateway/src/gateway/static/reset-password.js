// The /reset-password page. The link in the mail carries its token in the
// fragment (#token=...), which a browser never sends to a server: it stays out
// of access logs, proxies and Referer headers. This script reads it, removes
// it from the address bar, and sends it with the new password.
(function () {
  "use strict";
  var form = document.getElementById("reset-form");
  var status = document.getElementById("reset-status");
  var token = new URLSearchParams(window.location.hash.slice(1)).get("token");
  if (token) {
    window.history.replaceState(null, "", window.location.pathname);
  } else {
    form.hidden = true;
    status.textContent =
      "This link is incomplete. Open the whole link from the mail, or ask for a new one.";
    return;
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var password = form.elements.new_password.value;
    if (password !== form.elements.again.value) {
      status.textContent = "The two passwords differ.";
      return;
    }
    form.elements.submit.disabled = true;
    status.textContent = "Setting your password...";
    fetch("/api/v1/auth/password-reset/confirm", {
      method: "POST",
      credentials: "omit",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: token, new_password: password }),
    })
      .then(function (response) {
        if (response.status === 204) {
          form.hidden = true;
          status.textContent = "Your password is set. Every session of yours has ended: ";
          var link = document.createElement("a");
          link.href = "/signin";
          link.textContent = "sign in with the new password";
          status.appendChild(link);
          return null;
        }
        return response.json().then(function (body) {
          status.textContent = body.message || "The password could not be set.";
        });
      })
      .catch(function () {
        status.textContent = "The gateway could not be reached; try again.";
      })
      .finally(function () {
        form.elements.submit.disabled = false;
      });
  });
})();

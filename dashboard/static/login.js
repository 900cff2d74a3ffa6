/* The sign-in page (a file, not an inline script: the pages' Content-Security-Policy allows
   only our own script files). Sign-in is not cookie-authenticated: no CSRF header needed. */
(function () {
  "use strict";
  var form = document.getElementById("login-form");
  var errorBox = document.getElementById("login-error");
  var submit = document.getElementById("login-submit");

  function showError(text) { errorBox.textContent = text || ""; }

  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    showError("");
    var body = {
      tenant: document.getElementById("login-tenant").value.trim(),
      email: document.getElementById("login-email").value.trim(),
      password: document.getElementById("login-password").value
    };
    if (!body.tenant || !body.email || !body.password) {
      showError("Please fill in organisation, email and password.");
      return;
    }
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      var resp = await fetch("/api/auth/login", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify(body)
      });
      if (resp.ok) {
        window.location.assign("/agent");
        return;
      }
      var detail = null;
      try {
        var data = await resp.json();
        if (data && typeof data.detail === "string") detail = data.detail;
      } catch (e) { /* not JSON */ }
      if (resp.status === 401) showError(detail || "invalid credentials");
      else if (resp.status === 429) showError(detail || "Too many attempts. Please wait a moment.");
      else showError(detail || ("Sign-in failed (" + resp.status + ")."));
    } catch (e) {
      showError("Cannot reach the server. Please try again.");
    } finally {
      submit.disabled = false;
      submit.textContent = "Sign in";
    }
  });
})();

/* The own-password form (/password): every page sends a user here while an admin-set password
   is unchanged (dashboard/pages.py), and the API refuses them everything else (hub/auth.py).
   After the change the hub re-sets the session cookie and we return to `?next=`. A file, not an
   inline script: the pages' Content-Security-Policy allows only our own script files. */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var form = $("password-form");
  var errorBox = $("pw-error");
  var submit = $("pw-submit");

  // Only a path on this site: "//host/..." and "/\host" would be read by browsers as another
  // host (an open redirect handed out in a link to this form).
  function target() {
    var next = new URLSearchParams(window.location.search).get("next") || "";
    if (next.charAt(0) !== "/" || next.charAt(1) === "/" || next.charAt(1) === "\\") return "/agent";
    if (next.indexOf("/password") === 0) return "/agent";
    return next;
  }

  function showError(text) { errorBox.textContent = text || ""; }

  function brand(me) {
    var b = me.branding || {};
    if (b.logo_url) {
      $("pw-logo").src = b.logo_url;
      $("pw-logo").hidden = false;
    }
    if (b.name) document.title = "Change your password – " + b.name;
    $("pw-who").textContent = "Signed in as " + (me.email || "") +
      (me.tenant_name ? " (" + me.tenant_name + ")" : "");
    if (!me.must_change_password) $("pw-reason").textContent = "Choose a new password.";
  }

  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    showError("");
    var body = {
      current_password: $("pw-current").value,
      new_password: $("pw-new").value,
      new_password_repeat: $("pw-repeat").value
    };
    if (!body.current_password || !body.new_password || !body.new_password_repeat) {
      showError("Please fill in all three fields.");
      return;
    }
    if (body.new_password !== body.new_password_repeat) {
      showError("The new password and its repetition differ.");
      return;
    }
    submit.disabled = true;
    try {
      await HubDesk.api("POST", "/api/me/password", body);
      window.location.replace(target());
    } catch (e) {
      showError(e && e.message ? e.message : "The password could not be changed.");
      submit.disabled = false;
    }
  });

  $("pw-logout").addEventListener("click", function (ev) {
    ev.preventDefault();
    HubDesk.logout();
  });

  HubDesk.api("GET", "/api/me").then(brand, function () { /* 401 already went to the login */ });
})();

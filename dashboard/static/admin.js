/* Administration (dashboard/admin_api.py): tenants below yours, your tenant's users and roles,
 * branding, and your own password. Tabs appear for the permissions the caller holds (GET
 * /api/me); the server checks every request anyway. Plain ES2020; all data goes into the page
 * through textContent / value.
 */
(function () {
  "use strict";

  function $(id) { return document.getElementById(id); }

  var el = HubDesk.el, clear = HubDesk.clear, api = HubDesk.api;
  var TABS = {
    tenants: "tenants.manage", users: "users.manage", roles: "roles.manage", branding: "branding.manage",
    password: null,
  };
  var me = null;
  var roles = [];        // GET /api/admin/roles: roles
  var permissions = [];  // and the catalogue
  var tenantsData = null;

  // ------------------------------------------------------------------ messages
  function showError(text) {
    $("ad-error").textContent = text || "";
    $("ad-error").hidden = !text;
  }

  function notice(text, secret) {
    var box = $("ad-notice");
    clear(box);
    box.hidden = !text;
    if (!text) return;
    box.appendChild(document.createTextNode(text));
    if (secret) {
      box.appendChild(document.createTextNode(" "));
      box.appendChild(el("code", "ad-secret", secret));
      box.appendChild(document.createTextNode(" (shown once: pass it on now)"));
    }
  }

  function fail(e) {
    if (e && e.status === 401) return;
    notice("");
    showError(e && e.message ? e.message : String(e));
  }

  function done(text, secret) {
    showError("");
    notice(text, secret);
  }

  function can(permission) { return !!me && (me.permissions || []).indexOf(permission) >= 0; }

  function button(label, className, onClick) {
    var b = el("button", "btn btn-small " + (className || ""), label);
    b.type = "button";
    b.addEventListener("click", onClick);
    return b;
  }

  // ------------------------------------------------------------------ tabs
  function show(tab) {
    Object.keys(TABS).forEach(function (name) {
      var active = name === tab;
      $("panel-" + name).hidden = !active;
      $("tab-" + name).setAttribute("aria-selected", active ? "true" : "false");
      $("tab-" + name).classList.toggle("active", active);
    });
    if (window.location.hash !== "#" + tab) history.replaceState(null, "", "#" + tab);
    showError("");
    if (tab === "tenants") loadTenants().catch(fail);
    if (tab === "users") loadUsers().catch(fail);
    if (tab === "roles") loadRoles().catch(fail);
    if (tab === "branding") loadBranding().catch(fail);
  }

  // ------------------------------------------------------------------ tenants
  function levelLabel(level) { return level.charAt(0).toUpperCase() + level.slice(1); }

  async function loadTenants() {
    tenantsData = await api("GET", "/api/admin/tenants");
    var byId = {};
    byId[tenantsData.own.id] = tenantsData.own;
    tenantsData.tenants.forEach(function (t) { byId[t.id] = t; });
    var body = $("tenants");
    clear(body);
    tenantsData.tenants.forEach(function (t) {
      var row = el("tr");
      row.setAttribute("data-tenant-id", t.id);
      row.appendChild(el("td", "tenant-name", t.name));
      row.appendChild(el("td", "tenant-slug", t.slug));
      row.appendChild(el("td", "tenant-level", levelLabel(t.level)));
      row.appendChild(el("td", "tenant-parent", (byId[t.parent_id] || {}).name || ""));
      row.appendChild(el("td", "tenant-state", t.active ? "Enabled" : "Disabled"));
      var actions = el("td", "ad-row-actions");
      actions.appendChild(button(t.active ? "Disable" : "Enable", "tenant-toggle", function () {
        if (t.active && !window.confirm("Disable " + t.name + "? Its staff and everyone below it are signed out.")) return;
        api("PATCH", "/api/admin/tenants/" + encodeURIComponent(t.id), { active: !t.active })
          .then(function () { done(t.name + (t.active ? " disabled." : " enabled.")); return loadTenants(); })
          .catch(fail);
      }));
      actions.appendChild(button("Reset admin password", "tenant-reset", function () {
        api("POST", "/api/admin/tenants/" + encodeURIComponent(t.id) + "/admin-password", {})
          .then(function (r) { done("New password for " + r.user.email + ":", r.password); })
          .catch(fail);
      }));
      row.appendChild(actions);
      body.appendChild(row);
    });
    $("tenants-empty").hidden = tenantsData.tenants.length > 0;
    // the form: parents that may have children, and the levels the chosen parent may create
    var parent = $("tn-parent");
    var chosen = parent.value;
    clear(parent);
    [tenantsData.own].concat(tenantsData.tenants).forEach(function (t) {
      if (!(tenantsData.child_levels[t.id] || []).length) return;
      var opt = el("option", null, t.id === tenantsData.own.id ? t.name + " (yours)" : t.name);
      opt.value = t.id;
      parent.appendChild(opt);
    });
    if (chosen) parent.value = chosen;
    fillLevels();
    $("tn-save").disabled = !parent.options.length;
  }

  function fillLevels() {
    var level = $("tn-level");
    clear(level);
    (tenantsData.child_levels[$("tn-parent").value] || []).forEach(function (name) {
      var opt = el("option", null, levelLabel(name));
      opt.value = name;
      level.appendChild(opt);
    });
  }

  async function createTenant(ev) {
    ev.preventDefault();
    var body = {
      name: $("tn-name").value.trim(), slug: $("tn-slug").value.trim().toLowerCase(), level: $("tn-level").value,
      parent_id: $("tn-parent").value || null, admin_email: $("tn-admin-email").value.trim(),
      admin_name: $("tn-admin-name").value.trim(), admin_password: $("tn-admin-password").value || null,
    };
    try {
      var made = await api("POST", "/api/admin/tenants", body);
      $("tenant-form").reset();
      done("Tenant " + made.tenant.name + " created; its admin signs in as " + made.admin.email +
        (made.password ? " with:" : "."), made.password);
      await loadTenants();
    } catch (e) { fail(e); }
  }

  // ------------------------------------------------------------------ users
  async function loadRoleList() {
    var data = await api("GET", "/api/admin/roles");
    roles = data.roles;
    permissions = data.permissions;
  }

  function roleChecks(box, selected) {
    var legend = box.querySelector("legend");
    clear(box);
    if (legend) box.appendChild(legend);
    roles.forEach(function (r) {
      var label = el("label", "ad-check");
      var input = el("input");
      input.type = "checkbox";
      input.value = r.name;
      input.checked = selected.indexOf(r.name) >= 0;
      input.setAttribute("data-role", r.name);
      label.appendChild(input);
      label.appendChild(document.createTextNode(" " + r.label));
      box.appendChild(label);
    });
  }

  function checked(box) {
    return Array.prototype.map.call(box.querySelectorAll("input[type=checkbox]:checked"), function (i) { return i.value; });
  }

  function splitList(text) {
    return text.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
  }

  async function loadUsers() {
    await loadRoleList();
    var users = await api("GET", "/api/admin/users");
    var body = $("users");
    clear(body);
    users.forEach(function (u) {
      var row = el("tr");
      row.setAttribute("data-user-id", u.id);
      row.appendChild(el("td", "user-name", u.name));
      row.appendChild(el("td", "user-email", u.email));
      row.appendChild(el("td", "user-roles", u.roles.join(", ")));
      row.appendChild(el("td", "user-skills", u.skills.join(", ")));
      row.appendChild(el("td", "user-state", (u.active ? "Enabled" : "Disabled") +
        (u.must_change_password ? " · must change password" : "")));
      var actions = el("td", "ad-row-actions");
      actions.appendChild(button("Edit", "user-edit", function () { editUser(u); }));
      if (u.id !== me.id) {
        actions.appendChild(button(u.active ? "Disable" : "Enable", "user-toggle", function () {
          api("PATCH", "/api/admin/users/" + encodeURIComponent(u.id), { active: !u.active })
            .then(function () { done(u.email + (u.active ? " disabled: signed out everywhere." : " enabled.")); return loadUsers(); })
            .catch(fail);
        }));
      }
      actions.appendChild(button("Reset password", "user-reset", function () {
        api("POST", "/api/admin/users/" + encodeURIComponent(u.id) + "/password", {})
          .then(function (r) { done("New password for " + u.email + ":", r.password); return loadUsers(); })
          .catch(fail);
      }));
      row.appendChild(actions);
      body.appendChild(row);
    });
    if (!$("us-id").value) roleChecks($("us-roles"), ["agent"]);
  }

  function editUser(u) {
    $("us-id").value = u.id;
    $("us-email").value = u.email;
    $("us-email").disabled = true;
    $("us-name").value = u.name;
    $("us-skills").value = u.skills.join(", ");
    $("us-password-label").hidden = true;
    roleChecks($("us-roles"), u.roles);
    $("user-form-title").textContent = "Edit " + u.email;
    $("us-save").textContent = "Save user";
    $("us-cancel").hidden = false;
    $("us-name").focus();
  }

  function resetUserForm() {
    $("user-form").reset();
    $("us-id").value = "";
    $("us-email").disabled = false;
    $("us-password-label").hidden = false;
    $("user-form-title").textContent = "New user";
    $("us-save").textContent = "Add user";
    $("us-cancel").hidden = true;
    roleChecks($("us-roles"), ["agent"]);
  }

  async function saveUser(ev) {
    ev.preventDefault();
    var id = $("us-id").value;
    var body = { name: $("us-name").value.trim(), roles: checked($("us-roles")), skills: splitList($("us-skills").value) };
    try {
      if (id) {
        var saved = await api("PATCH", "/api/admin/users/" + encodeURIComponent(id), body);
        done("Saved " + saved.email + ".");
      } else {
        body.email = $("us-email").value.trim();
        body.password = $("us-password").value || null;
        var made = await api("POST", "/api/admin/users", body);
        done("Added " + made.user.email + (made.password ? "; first password:" : "."), made.password);
      }
      resetUserForm();
      await loadUsers();
    } catch (e) { fail(e); }
  }

  // ------------------------------------------------------------------ roles
  async function loadRoles() {
    await loadRoleList();
    var head = $("roles-head");
    clear(head);
    head.appendChild(el("th", null, "Role"));
    permissions.forEach(function (p) {
      var th = el("th", "ad-perm", p.name);
      th.title = p.description;
      head.appendChild(th);
    });
    head.appendChild(el("th", "num", "Users"));
    head.appendChild(el("th"));
    var body = $("roles");
    clear(body);
    roles.forEach(function (r) {
      var row = el("tr");
      row.setAttribute("data-role", r.name);
      var name = el("td", "role-name");
      name.appendChild(el("strong", null, r.label));
      name.appendChild(el("span", "muted", " " + r.name + (r.builtin ? (r.edited ? " · built-in, edited" : " · built-in") : "")));
      row.appendChild(name);
      permissions.forEach(function (p) {
        var cell = el("td", "ad-perm");
        var box = el("input");
        box.type = "checkbox";
        box.value = p.name;
        box.checked = r.permissions.indexOf(p.name) >= 0;
        box.disabled = r.locked;
        box.setAttribute("aria-label", r.name + ": " + p.name);
        cell.appendChild(box);
        row.appendChild(cell);
      });
      row.appendChild(el("td", "num role-users", r.users));
      var actions = el("td", "ad-row-actions");
      if (!r.locked) {
        actions.appendChild(button("Save", "role-save", function () {
          api("PUT", "/api/admin/roles/" + encodeURIComponent(r.name), { permissions: checked(row) })
            .then(function () { done("Role " + r.label + " saved."); return loadRoles(); })
            .catch(fail);
        }));
        if (!r.builtin || r.edited) {
          actions.appendChild(button(r.builtin ? "Reset" : "Delete", "role-delete", function () {
            api("DELETE", "/api/admin/roles/" + encodeURIComponent(r.name))
              .then(function (res) { done("Role " + r.label + " " + res.status + "."); return loadRoles(); })
              .catch(fail);
          }));
        }
      }
      row.appendChild(actions);
      body.appendChild(row);
    });
    var box = $("rl-permissions");
    var legend = box.querySelector("legend");
    clear(box);
    if (legend) box.appendChild(legend);
    permissions.forEach(function (p) {
      var label = el("label", "ad-check");
      label.title = p.description;
      var input = el("input");
      input.type = "checkbox";
      input.value = p.name;
      label.appendChild(input);
      label.appendChild(document.createTextNode(" " + p.name));
      box.appendChild(label);
    });
  }

  async function createRole(ev) {
    ev.preventDefault();
    try {
      var made = await api("POST", "/api/admin/roles", {
        name: $("rl-name").value.trim().toLowerCase(), label: $("rl-label").value.trim(),
        permissions: checked($("rl-permissions")),
      });
      $("role-form").reset();
      done("Role " + made.label + " created.");
      await loadRoles();
    } catch (e) { fail(e); }
  }

  // ------------------------------------------------------------------ branding
  function renderBranding(view) {
    $("br-name").value = view.own.name || "";
    var eff = view.effective;
    $("br-effective").textContent = eff.name || "Contact hub";
    $("br-inherited").hidden = !eff.inherited;
    $("br-logo").hidden = !eff.logo_url;
    if (eff.logo_url) $("br-logo").src = eff.logo_url;
    $("br-remove").disabled = !view.own.has_logo;
    if (window.HubDesk.applyBranding) window.HubDesk.applyBranding(eff);
  }

  async function loadBranding() {
    renderBranding(await api("GET", "/api/admin/branding"));
  }

  async function saveBrandingName(ev) {
    ev.preventDefault();
    try {
      renderBranding(await api("PUT", "/api/admin/branding", { name: $("br-name").value.trim() || null }));
      done("Branding saved.");
    } catch (e) { fail(e); }
  }

  async function uploadLogo(ev) {
    ev.preventDefault();
    var file = $("br-file").files[0];
    if (!file) return;
    var form = new FormData();
    form.append("file", file, file.name);
    try {
      var resp = await fetch("/api/admin/branding/logo", {
        method: "POST", credentials: "same-origin", body: form,
        headers: HubDesk.csrfHeaders ? HubDesk.csrfHeaders({ Accept: "application/json" }) : { Accept: "application/json" },
      });
      var data = null;
      try { data = await resp.json(); } catch (e) { data = null; }
      if (!resp.ok) {
        throw new HubDesk.ApiError(resp.status, (data && HubDesk.detailText(data.detail)) || "Upload failed (" + resp.status + ")");
      }
      $("logo-form").reset();
      renderBranding(data);
      done("Logo uploaded.");
    } catch (e) { fail(e); }
  }

  async function removeLogo() {
    try {
      renderBranding(await api("DELETE", "/api/admin/branding/logo"));
      done("Logo removed.");
    } catch (e) { fail(e); }
  }

  // ------------------------------------------------------------------ own password
  async function changePassword(ev) {
    ev.preventDefault();
    try {
      await api("POST", "/api/me/password", {
        current_password: $("pw-current").value, new_password: $("pw-new").value,
        new_password_repeat: $("pw-repeat").value,
      });
      $("password-form").reset();
      $("pw-must").hidden = true;
      done("Password changed. Your other sessions were signed out.");
    } catch (e) { fail(e); }
  }

  // ------------------------------------------------------------------ boot
  async function boot() {
    try {
      me = await api("GET", "/api/me");
    } catch (e) { fail(e); return; }
    $("user-name").textContent = me.name || me.email || "";
    $("tenant-name").textContent = me.tenant_name || me.tenant_slug || "";
    $("pw-must").hidden = !me.must_change_password;
    Object.keys(TABS).forEach(function (name) {
      var tab = $("tab-" + name);
      tab.hidden = TABS[name] !== null && !can(TABS[name]);
      tab.addEventListener("click", function () { show(name); });
    });
    $("logout").addEventListener("click", function (ev) {
      if (!HubDesk.logout) return;
      ev.preventDefault();
      HubDesk.logout();
    });
    $("tn-parent").addEventListener("change", fillLevels);
    $("tenant-form").addEventListener("submit", createTenant);
    $("user-form").addEventListener("submit", saveUser);
    $("us-cancel").addEventListener("click", resetUserForm);
    $("role-form").addEventListener("submit", createRole);
    $("branding-form").addEventListener("submit", saveBrandingName);
    $("logo-form").addEventListener("submit", uploadLogo);
    $("br-remove").addEventListener("click", removeLogo);
    $("password-form").addEventListener("submit", changePassword);
    var wanted = window.location.hash.replace("#", "");
    var first = Object.keys(TABS).filter(function (name) { return !$("tab-" + name).hidden; });
    if (me.must_change_password) wanted = "password";
    show(first.indexOf(wanted) >= 0 ? wanted : first[0]);
    window.addEventListener("hashchange", function () {
      var tab = window.location.hash.replace("#", "");
      if (TABS.hasOwnProperty(tab) && !$("tab-" + tab).hidden && $("panel-" + tab).hidden) show(tab);
    });
  }

  boot();
})();

// devicehub admin UI: the little the pages need a script for. Written for this project;
// nothing here is fetched from elsewhere. Pages work without it, except the upload
// progress bar and the live session list.
"use strict";
(function () {
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  // Forms that delete or cancel ask first.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });

  // Lists of sessions refresh themselves every few seconds (rows rendered by the server).
  // The request says it is a background one, so an open page still reaches the idle timeout.
  var rows = document.getElementById("session-rows");
  if (rows && rows.getAttribute("data-refresh")) {
    var url = rows.getAttribute("data-refresh");
    var refresh = function () {
      if (document.hidden) { return; }
      fetch(url, { credentials: "same-origin", headers: { "X-Devicehub-Background": "1" }, redirect: "manual" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { rows.innerHTML = html; } })
        .catch(function () {});
    };
    window.setInterval(refresh, 3000);
  }

  // The image upload: the file's body goes straight to the server as it is read (PUT, no
  // copy in memory), with a progress bar.
  var upload = document.getElementById("upload");
  if (upload) {
    var bar = document.getElementById("upload-progress");
    var status = document.getElementById("upload-status");
    var button = document.getElementById("upload-button");
    var show = function (percent, text) {
      bar.value = percent;
      bar.textContent = percent + " %";
      status.textContent = text;
    };
    upload.addEventListener("submit", function (event) {
      event.preventDefault();
      var file = document.getElementById("upload-file").files[0];
      if (!file) { return; }
      var max = Number(upload.getAttribute("data-max"));
      if (max && file.size > max) { show(0, "The file is larger than the server's limit of " + max + " bytes."); return; }
      var xhr = new XMLHttpRequest();
      xhr.open("PUT", upload.getAttribute("data-upload") + "?filename=" + encodeURIComponent(file.name));
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          var p = Math.floor(e.loaded * 100 / e.total);
          show(p, p + " % (" + e.loaded + " of " + e.total + " bytes)");
        }
      });
      xhr.addEventListener("load", function () {
        var body = {};
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = {}; }
        if (xhr.status === 200) {
          show(100, "100 %: uploaded " + body.size + " bytes, SHA-256 " + body.sha256 + ". Reload the page to see it.");
          upload.setAttribute("data-done", "1");
        } else {
          show(0, "Not uploaded: " + (body.detail || ("the server answered " + xhr.status)));
        }
        button.disabled = false;
      });
      xhr.addEventListener("error", function () { show(0, "Not uploaded: the connection failed."); button.disabled = false; });
      button.disabled = true;
      show(0, "0 %");
      xhr.send(file);
    });
  }
})();

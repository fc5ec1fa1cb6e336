/*! cartrecovery-sw.js: the tracking snippet's service worker. Docs: docs/snippet.md
 *
 * Shows the notifications the platform pushes and opens the cart's restore link on click.
 * A push payload is JSON: {title, body, icon, image, badge, url, tag, data}.
 *
 * A service worker must be served from the page's own origin, so a store serves a one-line
 * file at https://SHOP/cartrecovery-sw.js:   importScripts("https://APP/static/cartrecovery-sw.js");
 */
/* global self, clients */
(function () {
  "use strict";

  var DEFAULT_TITLE = "You left something in your cart";

  function readPayload(event) {
    if (!event.data) return {};
    try {
      var parsed = event.data.json();
      return parsed && typeof parsed === "object" ? parsed : { body: String(parsed) };
    } catch (error) {
      return { body: event.data.text() };
    }
  }

  function isWebUrl(url) {
    return typeof url === "string" && /^https?:\/\//i.test(url);
  }

  self.addEventListener("install", function () {
    self.skipWaiting(); // a fixed worker takes over without waiting for tabs to close
  });

  self.addEventListener("activate", function (event) {
    event.waitUntil(self.clients.claim());
  });

  self.addEventListener("push", function (event) {
    var payload = readPayload(event);
    var options = {
      body: payload.body || "",
      data: { url: isWebUrl(payload.url) ? payload.url : null, data: payload.data || {} }
    };
    ["icon", "image", "badge", "tag", "lang", "dir"].forEach(function (name) {
      if (payload[name]) options[name] = payload[name];
    });
    if (payload.tag) options.renotify = true; // a newer reminder for the same cart replaces it
    // Every push must show a notification (userVisibleOnly), even an odd one.
    event.waitUntil(self.registration.showNotification(payload.title || DEFAULT_TITLE, options));
  });

  self.addEventListener("notificationclick", function (event) {
    event.notification.close();
    var url = event.notification.data && event.notification.data.url;
    if (!isWebUrl(url)) return;
    event.waitUntil(
      clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (windows) {
        for (var i = 0; i < windows.length; i++) {
          if (windows[i].url === url && "focus" in windows[i]) return windows[i].focus();
        }
        return clients.openWindow(url);
      })
    );
  });
})();

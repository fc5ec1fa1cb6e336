/*! cartrecovery.js: abandoned-cart tracking snippet. Docs: docs/snippet.md
 *
 *   <script src="https://APP/static/cartrecovery.js" data-key="cr_..." async></script>
 *
 * Sends the cart and the shopper's email/phone (read when a checkout field loses focus) to
 * POST /api/v1/carts/track with the store's publishable key. Everything runs inside
 * try/catch: the snippet never throws into the page and never blocks it.
 */
(function (window, document) {
  "use strict";

  var previous = window.cartrecovery;
  if (previous && previous.__loaded) return; // the tag is on the page twice

  var EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
  var STORAGE_KEY = "cartrecovery:cart_id";
  var KEEPALIVE_LIMIT = 60000; // browsers cap keepalive bodies at 64 KiB in total
  var WOO_CART_PATH = "/wp-json/wc/store/v1/cart";
  var DEFAULT_FIELDS = 'input[type="email"], input[name*="email" i], ' +
    'input[type="tel"], input[name*="phone" i]';

  function noop() {}

  function safe(fn) {
    return function () {
      try {
        return fn.apply(this, arguments);
      } catch (error) {
        if (window.console && console.debug) console.debug("cartrecovery:", error);
      }
    };
  }

  function findScript() {
    var current = document.currentScript;
    if (current && current.getAttribute("data-key")) return current;
    var scripts = document.querySelectorAll("script[data-key][src]");
    for (var i = 0; i < scripts.length; i++) {
      if (/cartrecovery\.js(\?|#|$)/.test(scripts[i].src)) return scripts[i];
    }
    return null;
  }

  var script = findScript();

  function attr(name, fallback) {
    var value = script ? script.getAttribute(name) : null;
    return value === null || value === "" ? fallback : value;
  }

  function scriptOrigin() {
    try {
      return new URL(script.src, window.location.href).origin;
    } catch (error) {
      return window.location.origin;
    }
  }

  var config = {
    key: attr("data-key", ""),
    endpoint: attr("data-endpoint", script ? scriptOrigin() : window.location.origin)
      .replace(/\/+$/, ""),
    cartSource: attr("data-cart-source", "[data-cartrecovery-cart]"),
    fields: attr("data-fields", DEFAULT_FIELDS),
    debounce: Math.max(0, parseInt(attr("data-debounce", "400"), 10) || 0),
    restoreUrl: attr("data-restore-url", null),
    // The store's marketing opt-in checkbox (a CSS selector), when it has one: its state is
    // sent as customer.accepts_marketing, which the email consent policy opt_in accepts.
    consentField: attr("data-consent-field", null),
    vapidKey: attr("data-vapid-key", null),
    serviceWorker: attr("data-service-worker", null)
  };

  var state = {
    cart: null,        // the last cart given by track() or read from the page
    tracked: false,    // track() was called: the page owns the cart from now on
    email: null,
    phone: null,
    acceptsMarketing: null, // the opt-in checkbox: true/false once the shopper touched it
    refusedPhone: null,     // a number the API refused (e.g. not a number that can be messaged)
    timer: null,
    lastSent: null,    // fingerprint of the last body sent: a repeated blur sends nothing
    memoryId: null     // the cart id when localStorage is unavailable
  };

  // --- ids ----------------------------------------------------------------------------------

  function randomId(prefix) {
    var c = window.crypto;
    if (c && c.randomUUID) return prefix + "_" + c.randomUUID();
    var bytes = new Uint8Array(16);
    if (c && c.getRandomValues) {
      c.getRandomValues(bytes);
    } else {
      for (var i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
    }
    var hex = "";
    for (var j = 0; j < bytes.length; j++) hex += (bytes[j] + 256).toString(16).slice(1);
    return prefix + "_" + hex;
  }

  /** The stable id of this browser's cart (kept in localStorage until reset()). */
  function cartId() {
    try {
      var stored = window.localStorage.getItem(STORAGE_KEY);
      if (stored) return stored;
      var created = randomId("c");
      window.localStorage.setItem(STORAGE_KEY, created);
      return created;
    } catch (error) {
      // Storage blocked (privacy mode, sandboxed frame): one id for this page view.
      return state.memoryId || (state.memoryId = randomId("c"));
    }
  }

  function reset() {
    try {
      window.localStorage.removeItem(STORAGE_KEY);
    } catch (error) { /* nothing stored */ }
    state.memoryId = null;
    state.cart = null;
    state.tracked = false;
    state.lastSent = null;
  }

  // --- contact details ----------------------------------------------------------------------

  function cleanEmail(value) {
    var text = String(value || "").trim();
    return EMAIL.test(text) && text.length <= 320 ? text : null;
  }

  /** International numbers only (+ and 7 to 15 digits): the API refuses anything else. */
  function cleanPhone(value) {
    var text = String(value || "").replace(/[\s().\-\/]/g, "");
    if (text.indexOf("00") === 0) text = "+" + text.slice(2);
    return /^\+[1-9]\d{6,14}$/.test(text) ? text : null;
  }

  function isEmailField(el) {
    return (el.type || "").toLowerCase() === "email" ||
      /email/i.test(el.name || "") || /email/i.test(el.id || "");
  }

  function readConsent(el) {
    if (!config.consentField || !el || !el.matches || !el.matches(config.consentField)) {
      return false;
    }
    var checked = !!el.checked;
    if (checked === state.acceptsMarketing) return false;
    state.acceptsMarketing = checked;
    return true;
  }

  function readField(el) {
    if (readConsent(el)) return true;
    if (!el || !el.matches || !el.matches(config.fields)) return false;
    if (isEmailField(el)) {
      var email = cleanEmail(el.value);
      if (email && email !== state.email) {
        state.email = email;
        return true;
      }
    } else {
      var phone = cleanPhone(el.value);
      if (phone && phone !== state.phone && phone !== state.refusedPhone) {
        state.phone = phone;
        return true;
      }
    }
    return false;
  }

  // --- the cart -----------------------------------------------------------------------------

  var CART_FIELDS = ["currency", "total_price", "line_items", "restore_url", "customer", "order"];

  function normalizeCart(cart) {
    if (!cart || typeof cart !== "object") return null;
    var out = {};
    for (var i = 0; i < CART_FIELDS.length; i++) {
      var name = CART_FIELDS[i];
      if (cart[name] !== undefined && cart[name] !== null) out[name] = cart[name];
    }
    if (out.line_items && !Array.isArray(out.line_items)) delete out.line_items;
    return out;
  }

  function decodeHtml(text) {
    // WooCommerce item names carry HTML entities; DOMParser never runs scripts.
    if (!text || text.indexOf("&") < 0) return text;
    try {
      return new DOMParser().parseFromString(text, "text/html").documentElement.textContent;
    } catch (error) {
      return text;
    }
  }

  /** "1234" with 2 minor digits → "12.34", exactly (no floating point). */
  function minorToDecimal(value, digits) {
    var text = String(value === undefined || value === null ? "" : value).replace(/[^0-9]/g, "");
    if (!text) return undefined;
    digits = parseInt(digits, 10) || 0;
    if (!digits) return text;
    while (text.length <= digits) text = "0" + text;
    return text.slice(0, -digits) + "." + text.slice(-digits);
  }

  /** The WooCommerce Store API cart (GET /wp-json/wc/store/v1/cart) as a snippet cart. */
  function fromWooCart(data) {
    var totals = data.totals || {};
    var items = (data.items || []).map(function (item) {
      var prices = item.prices || {};
      var image = item.images && item.images[0];
      return {
        product_id: item.id,
        sku: item.sku || undefined,
        title: decodeHtml(item.name),
        quantity: item.quantity,
        price: minorToDecimal(prices.price, prices.currency_minor_unit),
        image_url: image ? image.src : undefined
      };
    });
    return {
      currency: totals.currency_code,
      total_price: minorToDecimal(totals.total_price, totals.currency_minor_unit),
      line_items: items,
      restore_url: config.restoreUrl || window.location.origin + "/cart/"
    };
  }

  function readCartElement() {
    var el = document.querySelector(config.cartSource);
    if (!el) return null;
    var text = el.getAttribute("data-cart") || el.textContent;
    return text ? normalizeCart(JSON.parse(text)) : null;
  }

  /** Refresh state.cart from the configured source; resolves when done (never rejects). */
  function refreshCart() {
    if (state.tracked) return Promise.resolve();
    if (config.cartSource === "woocommerce") {
      return fetch(window.location.origin + WOO_CART_PATH, {
        credentials: "same-origin",
        headers: { Accept: "application/json" }
      }).then(function (response) {
        return response.ok ? response.json() : null;
      }).then(function (data) {
        if (data && !state.tracked) state.cart = fromWooCart(data);
      }).catch(noop);
    }
    try {
      state.cart = readCartElement() || state.cart;
    } catch (error) { /* malformed JSON on the page: keep what we had */ }
    return Promise.resolve();
  }

  // --- sending ------------------------------------------------------------------------------

  function post(path, body) {
    var json = JSON.stringify(body);
    try {
      return fetch(config.endpoint + path, {
        method: "POST",
        mode: "cors",
        credentials: "omit",
        keepalive: json.length < KEEPALIVE_LIMIT, // delivered even if the shopper leaves
        headers: {
          "Authorization": "Bearer " + config.key,
          "Content-Type": "application/json"
        },
        body: json
      }).then(function (response) {
        if (response.ok) return response.json().catch(noop);
        // A refused body: its error says which field, so a caller can drop it and resend.
        if (response.status === 400) {
          return response.json().then(function (answer) {
            return { refused: (answer && answer.error) || {} };
          }, function () { return null; });
        }
        return null;
      }, function () {
        return null;
      });
    } catch (error) {
      return Promise.resolve(null);
    }
  }

  function buildEvent() {
    var data = { cart_id: cartId() };
    var cart = state.cart || {};
    for (var name in cart) {
      if (Object.prototype.hasOwnProperty.call(cart, name)) data[name] = cart[name];
    }
    if (!data.restore_url && config.restoreUrl) data.restore_url = config.restoreUrl;
    if (state.email) data.email = state.email;
    if (state.phone) data.phone = state.phone;
    if (state.acceptsMarketing !== null) {
      var customer = {};
      var given = data.customer || {};
      for (var key in given) {
        if (Object.prototype.hasOwnProperty.call(given, key)) customer[key] = given[key];
      }
      customer.accepts_marketing = state.acceptsMarketing;
      data.customer = customer;
    }
    var event = data.order ? "order_completed"
      : (state.email || state.phone) ? "checkout_updated" : "cart_updated";
    return { event: event, cart_data: data };
  }

  function send() {
    clearTimeout(state.timer);
    state.timer = null;
    if (!config.key) return Promise.resolve(null);
    if (!state.cart && !state.email && !state.phone) return Promise.resolve(null);
    var event = buildEvent();
    var fingerprint = JSON.stringify(event);
    if (fingerprint === state.lastSent) return Promise.resolve(null);
    state.lastSent = fingerprint;
    event.timestamp = new Date().toISOString();
    event.event_id = randomId("e"); // each send is its own event; a retry would reuse it
    var sent = post("/api/v1/carts/track", event).then(safe(function (answer) {
      if (answer && answer.refused && event.cart_data.phone && refusesPhone(answer.refused)) {
        // The number cannot be messaged: keep the cart flowing without it.
        state.refusedPhone = event.cart_data.phone;
        if (state.phone === state.refusedPhone) state.phone = null;
        schedule();
        return null;
      }
      return answer;
    }));
    if (event.event === "order_completed") reset(); // the next cart is a new one
    return sent;
  }

  function refusesPhone(error) {
    var errors = (error.details && error.details.errors) || [];
    for (var i = 0; i < errors.length; i++) {
      var loc = errors[i] && errors[i].loc;
      if (loc && loc[loc.length - 1] === "phone") return true;
    }
    return false;
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = setTimeout(safe(function () {
      refreshCart().then(safe(send));
    }), config.debounce);
  }

  function flush() {
    // The page is going away: send what is pending now (keepalive carries it through).
    if (state.timer) safe(send)();
  }

  // --- push ---------------------------------------------------------------------------------

  function base64UrlToBytes(text) {
    var base64 = String(text).replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var raw = window.atob(base64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  function defaultServiceWorker() {
    // A service worker must come from the page's own origin: stores serve a one-line file
    // there that imports ours (docs/snippet.md); on our own origin, ours is used directly.
    return config.endpoint === window.location.origin
      ? config.endpoint + "/static/cartrecovery-sw.js" : "/cartrecovery-sw.js";
  }

  function askPermission() {
    if (Notification.permission === "granted") return Promise.resolve("granted");
    return new Promise(function (resolve) {
      var answer = Notification.requestPermission(resolve); // old Safari: callback only
      if (answer && answer.then) answer.then(resolve, function () { resolve("denied"); });
    });
  }

  function whenActive(registration) {
    if (registration.active) return Promise.resolve(registration);
    return new Promise(function (resolve) {
      var worker = registration.installing || registration.waiting;
      if (!worker) return resolve(registration);
      worker.addEventListener("statechange", function () {
        if (worker.state === "activated") resolve(registration);
      });
    });
  }

  /**
   * Ask for notification permission, subscribe with the VAPID public key and send the
   * subscription to POST /api/v1/push/subscriptions. Resolves with the subscription JSON, or
   * null when push is unavailable, refused or fails; never rejects.
   */
  function subscribePush(vapidPublicKey, options) {
    options = options || {};
    return new Promise(function (resolve) {
      var key = vapidPublicKey || config.vapidKey;
      if (!key || !config.key || !("serviceWorker" in navigator) ||
          !("PushManager" in window) || !("Notification" in window)) {
        return resolve(null);
      }
      var url = options.serviceWorker || config.serviceWorker || defaultServiceWorker();
      askPermission().then(function (permission) {
        if (permission !== "granted") throw new Error("notification permission " + permission);
        return navigator.serviceWorker.register(url, options.scope ? { scope: options.scope }
          : undefined);
      }).then(whenActive).then(function (registration) {
        return registration.pushManager.getSubscription().then(function (existing) {
          return existing || registration.pushManager.subscribe({
            userVisibleOnly: true,
            applicationServerKey: base64UrlToBytes(key)
          });
        });
      }).then(function (subscription) {
        var json = subscription.toJSON();
        var body = { subscription: json, cart_id: cartId() };
        if (state.email) body.email = state.email;
        return post("/api/v1/push/subscriptions", body).then(function (answer) {
          resolve(answer && !answer.refused ? json : null);
        });
      }).catch(function (error) {
        if (window.console && console.debug) console.debug("cartrecovery push:", error);
        resolve(null);
      });
    });
  }

  // --- wiring -------------------------------------------------------------------------------

  var onField = safe(function (event) {
    if (readField(event.target)) schedule();
  });

  var watchWooCommerce = safe(function () {
    // Cart changes WooCommerce announces: native events from the block cart, jQuery events
    // from the classic one.
    var refresh = safe(function () {
      refreshCart().then(safe(function () { if (state.cart) schedule(); }));
    });
    document.body.addEventListener("wc-blocks_added_to_cart", refresh);
    document.body.addEventListener("wc-blocks_removed_from_cart", refresh);
    if (window.jQuery) {
      window.jQuery(document.body).on(
        "added_to_cart removed_from_cart updated_cart_totals updated_checkout", refresh);
    }
  });

  var onReady = safe(function () {
    if (config.cartSource === "woocommerce") watchWooCommerce();
    readPrefilled();
  });

  var readPrefilled = safe(function () {
    // A signed-in shopper's checkout comes pre-filled: no blur will ever happen.
    var changed = false;
    var inputs = document.querySelectorAll(config.fields);
    for (var i = 0; i < inputs.length; i++) changed = readField(inputs[i]) || changed;
    // A box the store ticks for a signed-in subscriber counts only once it is ticked.
    var box = config.consentField ? document.querySelector(config.consentField) : null;
    if (box && box.checked) changed = readConsent(box) || changed;
    refreshCart().then(safe(function () {
      if (changed || state.cart) schedule();
    }));
  });

  var api = {
    __loaded: true,
    version: "1",
    /** Report the cart: {line_items, currency, total_price, restore_url, customer, order}. */
    track: safe(function (cart) {
      var normalized = normalizeCart(cart);
      if (!normalized) return;
      state.cart = normalized;
      state.tracked = true;
      if (cart.email) state.email = cleanEmail(cart.email) || state.email;
      if (cart.phone) state.phone = cleanPhone(cart.phone) || state.phone;
      if (normalized.order) {
        safe(send)();
      } else {
        schedule();
      }
    }),
    /** Report who the shopper is: {email, phone, accepts_marketing}. */
    identify: safe(function (who) {
      who = who || {};
      var email = cleanEmail(who.email);
      var phone = cleanPhone(who.phone);
      var consent = typeof who.accepts_marketing === "boolean";
      if (email) state.email = email;
      if (phone) state.phone = phone;
      if (consent) state.acceptsMarketing = who.accepts_marketing;
      if (email || phone || consent) schedule();
    }),
    subscribePush: subscribePush,
    cartId: safe(cartId),
    reset: safe(reset),
    flush: safe(function () { return send(); })
  };

  safe(function () {
    window.cartrecovery = api;
    document.addEventListener("focusout", onField, true);
    document.addEventListener("change", onField, true); // autofill may never blur
    window.addEventListener("pagehide", safe(flush));
    document.addEventListener("visibilitychange", safe(function () {
      if (document.visibilityState === "hidden") flush();
    }));
    // Calls queued before the snippet loaded: window.cartrecovery = [["identify", {...}]].
    var queued = Array.isArray(previous) ? previous : [];
    for (var i = 0; i < queued.length; i++) {
      var call = queued[i];
      if (call && typeof api[call[0]] === "function") {
        api[call[0]].apply(api, Array.prototype.slice.call(call, 1));
      }
    }
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", onReady);
    } else {
      onReady();
    }
  })();
})(window, document);

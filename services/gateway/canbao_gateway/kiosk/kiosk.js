// The kiosk page (自助一体机, api.md "Self-service"): the device logs in once with its client
// credentials; a citizen's ID card (here: the simulated reader form) opens their session; they
// read their own record, complete the phone on a keypad, print the proof of insurance (参保证明)
// and leave, or the session ends after a while without a touch. It speaks only the public API
// and builds the page with textContent, never with HTML from the server. Tokens live in
// sessionStorage: gone when the kiosk's browser closes.
"use strict";

const LABELS = JSON.parse(document.getElementById("labels").textContent);
const DEVICE_KEY = "canbao.kiosk.device";
const SESSION_KEY = "canbao.kiosk.session";
// The next person at the kiosk must not find the last one's record open: after this long
// without a touch the session ends (the gateway also ends it, GATEWAY_KIOSK_IDLE_SECONDS).
// `?idle=<seconds>` shortens it, for trying it out.
const IDLE_SECONDS = (() => {
  const asked = Number(new URLSearchParams(location.search).get("idle"));
  return Number.isFinite(asked) && asked >= 3 ? asked : 120;
})();
const PHONE = /^1[3-9]\d{9}$/;
const PHONE_DIGITS = 11;

const $ = (id) => document.getElementById(id);
const VIEWS = ["device-view", "card-view", "record-view", "keypad-view"];
let idleTimer = null;
let phoneDigits = "";
let phoneClientId = null; // one correction, one client_id: a retry is the same correction
let certificateUrl = null;

// -- Talking to the API -------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.title || String(status));
    this.status = status;
    this.problem = problem;
  }
  get slug() {
    return (this.problem.type || "").split("/").pop();
  }
}

function chinese(text) {
  return (text || "").split(" (")[0];
}

async function call(method, path, { token, body, form, raw = false } = {}) {
  const init = { method, headers: { Accept: raw ? "application/pdf" : "application/json" } };
  if (token) init.headers.Authorization = "Bearer " + token;
  if (form) {
    init.body = new URLSearchParams(form);
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, { title: "无法连接服务，请稍后再试或到窗口办理" });
  }
  if (response.ok && (raw || response.status === 204)) return response;
  const data = await response.json().catch(() => ({ title: "服务返回了无法识别的内容" }));
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// What a citizen is told when something is refused (the problem types of api.md and the README).
const MESSAGES = {
  "name-mismatch": "身份证上的姓名与登记信息不一致，请到窗口核实",
  "not-registered": "未查询到您的参保登记信息，请到社保经办窗口办理参保登记",
  "invalid-id-number": "身份证号码无法识别，请重新放置身份证",
  "invalid-request": "未能读取身份证信息，请重新放置身份证",
  "self-service-throttled": "操作过于频繁，请稍后再试",
  "session-ended": "本次服务已结束，请重新读取身份证",
  "token-expired": "本次服务已结束，请重新读取身份证",
  "no-verdict-yet": "您的参保状态尚在核定中，暂不能出具参保证明，请稍后再试",
  "invalid-items": "手机号码格式不正确，请核对后重新输入",
};

function messageOf(error) {
  if (!(error instanceof ApiError)) return "无法连接服务，请稍后再试或到窗口办理";
  return MESSAGES[error.slug] || chinese(error.problem.title) || "暂时无法办理，请到窗口咨询";
}

// -- Views and the idle timer -------------------------------------------------------------------

function show(view) {
  for (const id of VIEWS) $(id).hidden = id !== view;
  $("logout").hidden = !(view === "record-view" || view === "keypad-view");
}

function notice(text) {
  $("notice").textContent = text || "";
  $("notice").hidden = !text;
}

function touched() {
  if (idleTimer) clearTimeout(idleTimer);
  idleTimer = sessionStorage.getItem(SESSION_KEY)
    ? setTimeout(() => endSession("已因长时间无操作退出，请重新读取身份证"), IDLE_SECONDS * 1000)
    : null;
}

async function endSession(why) {
  const token = sessionStorage.getItem(SESSION_KEY);
  sessionStorage.removeItem(SESSION_KEY);
  if (idleTimer) clearTimeout(idleTimer);
  idleTimer = null;
  if (token) await call("DELETE", "/api/v1/self/session", { token }).catch(() => {});
  forgetCitizen();
  notice(why);
  start();
}

// Nothing of the last person stays on the page.
function forgetCitizen() {
  for (const id of ["card-number", "card-name"]) $(id).value = "";
  for (const id of ["person", "registration", "phone-line", "record-message", "card-message",
                    "keypad-message", "certificate-code"]) $(id).textContent = "";
  $("statuses").tBodies[0].replaceChildren();
  $("corrections").tBodies[0].replaceChildren();
  $("reminders").replaceChildren();
  $("certificate-block").hidden = true;
  if (certificateUrl) URL.revokeObjectURL(certificateUrl);
  certificateUrl = null;
  phoneDigits = "";
  phoneClientId = null;
}

// A request of the citizen's session; an ended session takes the kiosk back to the card.
async function asCitizen(method, path, options = {}) {
  touched();
  try {
    return await call(method, path, { ...options, token: sessionStorage.getItem(SESSION_KEY) });
  } catch (error) {
    if (error.status === 401) {
      sessionStorage.removeItem(SESSION_KEY);
      forgetCitizen();
      notice(MESSAGES["session-ended"]);
      start();
    }
    throw error;
  }
}

// -- The device and the card ---------------------------------------------------------------------

async function deviceLogIn(event) {
  event.preventDefault();
  const clientId = $("client-id").value.trim();
  const secret = $("client-secret").value;
  if (!clientId || !secret) {
    $("device-message").textContent = "请输入设备编号和设备密钥";
    return;
  }
  try {
    const found = await call("POST", "/api/v1/auth/token", {
      form: { grant_type: "client_credentials", client_id: clientId, client_secret: secret },
    });
    sessionStorage.setItem(DEVICE_KEY, found.access_token);
    $("client-secret").value = "";
    $("device-message").textContent = "";
    start();
  } catch (error) {
    $("device-message").textContent =
      error.slug === "invalid-client" ? "设备编号或密钥不正确，或设备已停用" : messageOf(error);
  }
}

async function readCard(event) {
  event.preventDefault();
  const number = $("card-number").value.trim().toUpperCase();
  const name = $("card-name").value.trim();
  notice("");
  if (!number || !name) {
    $("card-message").textContent = "未能读取身份证信息，请重新放置身份证";
    return;
  }
  $("card-message").textContent = "正在读取……";
  try {
    const opened = await call("POST", "/api/v1/self/session", {
      token: sessionStorage.getItem(DEVICE_KEY),
      body: { id_number: number, name },
    });
    sessionStorage.setItem(SESSION_KEY, opened.access_token);
    $("card-number").value = "";
    $("card-name").value = "";
    $("card-message").textContent = "";
    await showRecord();
  } catch (error) {
    if (error.status === 401) {
      // The device's own token expired or was revoked: the device logs in again.
      sessionStorage.removeItem(DEVICE_KEY);
      $("card-message").textContent = "";
      $("device-message").textContent = "设备登录已过期，请管理人员重新启用设备";
      start();
      return;
    }
    $("card-message").textContent = messageOf(error);
  }
}

// -- The own record ------------------------------------------------------------------------------

async function showRecord() {
  let record;
  try {
    record = await asCitizen("GET", "/api/v1/self/me");
  } catch (error) {
    if (error.status !== 401) $("card-message").textContent = messageOf(error);
    return;
  }
  $("person").textContent = `${record.name || ""}　${record.id_number || ""}`;
  $("registration").textContent = record.verdict_pending
    ? "登记状态：信息核定中"
    : `登记状态：${record.registration_label || "—"}`;
  const rows = LABELS.insurances.map(({ key, label }) => {
    const code = record.statuses ? record.statuses[key] : null;
    const row = document.createElement("tr");
    const name = document.createElement("td");
    name.textContent = label;
    const status = document.createElement("td");
    status.textContent = code ? (record.status_labels || {})[key] || LABELS.statuses[code] : "—";
    if (code && ["91", "92", "94"].includes(code)) status.className = "uninsured";
    row.append(name, status);
    return row;
  });
  $("statuses").tBodies[0].replaceChildren(...rows);
  const reminders = record.reminders.map((reminder) => {
    const item = document.createElement("li");
    item.textContent = reminder.text;
    if (reminder.self_service) item.className = "act";
    return item;
  });
  $("reminders").replaceChildren(...reminders);
  $("reminders-block").hidden = reminders.length === 0;
  const phone = record.contact && record.contact.phone;
  $("phone-line").textContent = `联系电话：${phone || "未登记"}`;
  showCorrections(record.corrections || []);
  show("record-view");
  $("record-title").focus();
}

function showCorrections(corrections) {
  const rows = corrections.map((correction) => {
    const row = document.createElement("tr");
    const items = document.createElement("td");
    items.textContent = correction.items.map((i) => i.label).join("、");
    const when = document.createElement("td");
    when.textContent = new Date(correction.submitted_at)
      .toLocaleString("zh-CN", { hour12: false, timeZone: "Asia/Shanghai" }); // the kiosk's hall
    const state = document.createElement("td");
    state.textContent = correction.state_label;
    row.append(items, when, state);
    return row;
  });
  $("corrections").tBodies[0].replaceChildren(...rows);
  $("corrections-block").hidden = rows.length === 0;
}

async function printCertificate() {
  const button = $("print");
  button.disabled = true;
  $("record-message").className = "message ok";
  $("record-message").textContent = "正在生成参保证明……";
  try {
    const response = await asCitizen("GET", "/api/v1/self/me/certificate.pdf", { raw: true });
    const blob = await response.blob();
    // The file is named after its verification code (…-<code>.pdf).
    const disposition = response.headers.get("Content-Disposition") || "";
    const code = (disposition.match(/certificate-([0-9A-Z]{16})\.pdf/) || [])[1];
    if (certificateUrl) URL.revokeObjectURL(certificateUrl);
    certificateUrl = URL.createObjectURL(blob);
    $("certificate-link").href = certificateUrl;
    $("certificate-link").download = "参保证明.pdf";
    $("certificate-code").textContent = code
      ? `参保证明已生成，验证码：${code.match(/.{4}/g).join("-")}`
      : "参保证明已生成";
    $("certificate-block").hidden = false;
    $("record-message").textContent = "";
  } catch (error) {
    $("record-message").className = "message";
    if (error.status !== 401) $("record-message").textContent = messageOf(error);
  } finally {
    button.disabled = false;
  }
}

// -- The phone keypad ----------------------------------------------------------------------------

function buildKeypad() {
  const keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "清除", "0", "删除"];
  $("keypad").replaceChildren(...keys.map((key) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = key;
    button.dataset.key = key;
    button.addEventListener("click", () => press(key));
    return button;
  }));
}

function press(key) {
  touched();
  const before = phoneDigits;
  if (key === "清除") phoneDigits = "";
  else if (key === "删除") phoneDigits = phoneDigits.slice(0, -1);
  else if (phoneDigits.length < PHONE_DIGITS) phoneDigits += key;
  // Another number is another correction: only a retry of the same one keeps its client_id.
  if (phoneDigits !== before) phoneClientId = null;
  $("phone-display").textContent = phoneDigits;
  $("keypad-message").textContent = "";
}

function openKeypad() {
  touched();
  phoneDigits = "";
  phoneClientId = null;
  $("phone-display").textContent = "";
  $("keypad-message").textContent = "";
  show("keypad-view");
}

async function submitPhone() {
  if (!PHONE.test(phoneDigits)) {
    $("keypad-message").textContent = "请输入11位手机号码";
    return;
  }
  phoneClientId = phoneClientId || crypto.randomUUID();
  const button = $("keypad-submit");
  button.disabled = true;
  try {
    await asCitizen("POST", "/api/v1/self/me/corrections", {
      body: { client_id: phoneClientId, items: { phone: phoneDigits } },
    });
    phoneDigits = "";
    phoneClientId = null;
    await showRecord();
    $("record-message").className = "message ok";
    $("record-message").textContent = "已提交，待经办机构确认";
  } catch (error) {
    if (error.status !== 401) $("keypad-message").textContent = messageOf(error);
  } finally {
    button.disabled = false;
  }
}

// -- Start -----------------------------------------------------------------------------------------

function start() {
  if (!sessionStorage.getItem(DEVICE_KEY)) {
    show("device-view");
    return;
  }
  if (sessionStorage.getItem(SESSION_KEY)) {
    showRecord();
    return;
  }
  show("card-view");
  $("card-number").focus();
}

$("device-form").addEventListener("submit", deviceLogIn);
$("card-form").addEventListener("submit", readCard);
$("logout").addEventListener("click", () => endSession("您已退出，欢迎再次使用"));
$("open-keypad").addEventListener("click", openKeypad);
$("keypad-back").addEventListener("click", () => { touched(); show("record-view"); });
$("keypad-submit").addEventListener("click", submitPhone);
$("print").addEventListener("click", printCertificate);
for (const event of ["pointerdown", "keydown"]) document.addEventListener(event, touched);
buildKeypad();
start();

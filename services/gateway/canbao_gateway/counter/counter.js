// The counter page: log in, look a person up by ID number, show the popup, save what the clerk
// collected. It speaks only the public API (api.md) and builds the page with textContent, never
// with HTML from the server. The token lives in sessionStorage: gone when the tab closes.
"use strict";

const LABELS = JSON.parse(document.getElementById("labels").textContent);
const TOKEN_KEY = "canbao.counter.token";
// A save is submitted for 复核 (a reviewer, never the clerk, passes it; 41号 表4); once passed,
// the registry applies it asynchronously (survey → identity → matching): the popup is asked
// again until the saved items have left it, while the clerk stays on this person.
const REFRESH_EVERY_MS = 3000;
const REFRESH_FOR_MS = 180000;
const ITEM_HINTS = {
  phone: "手机号码，或区号-固定电话",
  birth_date: "YYYYMMDD，如 19800101",
  id_number: "18位公民身份号码",
};

// A new registration asks, beside the registration items, where the person registers.
const REGISTRATION_EXTRAS = { region_code: { label: "登记地行政区划", code: "AAB301" } };

const $ = (id) => document.getElementById(id);
let current = null; // {idNumber, popup}
let staffScope = ""; // the clerk's GB/T 2260 prefix

// -- Talking to the API -------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.title || String(status));
    this.status = status;
    this.problem = problem;
  }
}

// The Chinese half of a problem's "中文 (English)" text.
function chinese(text) {
  return (text || "").split(" (")[0];
}

function problemMessage(error) {
  if (!(error instanceof ApiError)) return "无法连接服务，请检查网络后重试";
  const p = error.problem;
  const detail = p.detail && p.type !== "/problems/not-registered" ? "：" + chinese(p.detail) : "";
  return chinese(p.title) + detail;
}

async function api(method, path, { body, form, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  const token = sessionStorage.getItem(TOKEN_KEY);
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
    throw new ApiError(0, { title: "无法连接服务，请检查网络后重试" });
  }
  const data = await response.json().catch(() => ({ title: "服务返回了无法识别的内容" }));
  if (!response.ok) {
    if (response.status === 401 && !form) signedOut("登录已过期，请重新登录");
    throw new ApiError(response.status, data);
  }
  return data;
}

// -- Login --------------------------------------------------------------------------------------

async function logIn(event) {
  event.preventDefault();
  const message = $("login-message");
  const username = $("username").value.trim();
  const password = $("password").value;
  if (!username || !password) {
    message.textContent = "请输入用户名和密码";
    (username ? $("password") : $("username")).focus();
    return;
  }
  message.textContent = "";
  try {
    const answer = await api("POST", "/api/v1/auth/token", { form: { username, password } });
    sessionStorage.setItem(TOKEN_KEY, answer.access_token);
    $("password").value = "";
    await signedIn();
  } catch (error) {
    message.textContent = problemMessage(error);
    $("password").select();
    $("password").focus();
  }
}

async function signedIn() {
  const me = await api("GET", "/api/v1/auth/me");
  staffScope = me.scope;
  $("who-name").textContent = `${me.username}（${LABELS.roles[me.role] || me.role}，辖区 ${me.scope}）`;
  $("who").hidden = false;
  $("login-view").hidden = true;
  $("counter-view").hidden = false;
  $("id-number").focus();
}

function signedOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  current = null;
  $("who").hidden = true;
  $("counter-view").hidden = true;
  closeAll();
  $("login-view").hidden = false;
  $("login-message").textContent = message || "";
  $("username").focus();
}

// -- Lookup and popup ---------------------------------------------------------------------------

async function lookUp(event) {
  event.preventDefault();
  const input = $("id-number");
  const idNumber = input.value.replace(/\s+/g, "").toUpperCase();
  const message = $("lookup-message");
  if (!idNumber) {
    message.textContent = "请输入公民身份号码";
    input.focus();
    return;
  }
  message.textContent = "";
  $("collect-message").textContent = "";
  closeAll();
  try {
    const popup = await fetchPopup(idNumber);
    current = { idNumber, popup };
    showPopup(popup);
    const first = $("fields").querySelector("input, select");
    (first || $("popup-title")).focus();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      current = { idNumber, popup: null };
      showRegistration(idNumber);
      return;
    }
    message.textContent = problemMessage(error);
    input.select();
    input.focus();
  }
}

function fetchPopup(idNumber) {
  return api("GET", "/api/v1/counter/popup/" + encodeURIComponent(idNumber));
}

function closeAll() {
  $("popup").hidden = true;
  $("register").hidden = true;
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function showPopup(popup) {
  $("register").hidden = true;
  const pending = popup.pending || [];
  $("popup").hidden = false;
  $("person").textContent = `${popup.name || "（姓名未登记）"}　${popup.id_number || ""}`;

  const badges = $("badges");
  badges.replaceChildren();
  if (popup.deceased) badges.append(element("span", "已死亡", "bad"));
  if (popup.verdict_pending) badges.append(element("span", "参保状态计算中，请稍后刷新"));
  if (popup.in_scope === false) badges.append(element("span", "不在全民参保登记范围内"));
  if (popup.registration) {
    const kind = popup.registration === "needs_survey" ? "needs" : "good";
    badges.append(element("span", LABELS.registration[popup.registration], kind));
  } else if (popup.needs_survey) {
    badges.append(element("span", "需调查登记", "needs"));
  }

  const rows = $("statuses").tBodies[0];
  rows.replaceChildren();
  for (const insurance of LABELS.insurances) {
    const code = popup.statuses ? popup.statuses[insurance.key] : null;
    const row = element("tr");
    row.append(element("th", insurance.label));
    const cell = element("td", code ? `${code} ${LABELS.statuses[code] || ""}` : "—");
    if (code && code.startsWith("9") && code !== "95") cell.className = "uninsured";
    row.append(cell);
    rows.append(row);
  }

  const flags = $("flags");
  flags.replaceChildren(
    ...popup.flags.map((flag) => {
      const insurance = LABELS.insurances.find((i) => i.key === flag.insurance);
      const where = insurance ? `（${insurance.label}）` : "";
      return element("li", (LABELS.flags[flag.type] || flag.type) + where);
    }),
  );
  $("flags-block").hidden = popup.flags.length === 0;

  const reasons = $("reasons");
  reasons.replaceChildren(
    ...popup.survey_reasons.map((r) => element("li", LABELS.survey_reasons[r] || r)),
  );
  $("reasons-block").hidden = popup.survey_reasons.length === 0;

  // Values collected at a counter that wait for their 复核: shown, not asked again.
  $("pending").replaceChildren(
    ...pending.map((p) => {
      const at = new Date(p.submitted_at).toLocaleString("zh-CN", { hour12: false });
      const line = element("li", `${p.label}（${p.code}）：${p.value}　`);
      line.append(element("span", "待复核", "needs"), element("small", `　${at} 提交`));
      return line;
    }),
  );
  $("pending-block").hidden = pending.length === 0;
  const waiting = new Set(pending.map((p) => p.item));

  // One field per missing or inaccurate item not already waiting for 复核.
  const gaps = [
    ...popup.missing.map((gap) => ({ item: gap.item, note: "缺失" })),
    ...popup.inaccurate.map((gap) => ({ item: gap.item, note: "不准确：" + gap.reason })),
  ].filter((gap) => !waiting.has(gap.item));
  // Nothing is collected for the dead: their record closes with the death.
  const count = popup.deceased ? 0 : showFields($("fields"), "item-", gaps);
  $("collect-form").hidden = count === 0;
  $("complete").hidden = count !== 0 || popup.deceased || pending.length !== 0;
  const asOf = new Date(popup.as_of).toLocaleString("zh-CN", { hour12: false });
  $("as-of").textContent = "数据截至 " + asOf;
}

// A new registration (the number is unknown to the registry): every required item, the gender
// and birth date read off the number for the clerk to check.
function showRegistration(idNumber) {
  $("popup").hidden = true;
  $("register").hidden = false;
  $("register-person").textContent = "公民身份号码　" + idNumber;
  $("register-message").textContent = "";
  const needed = Object.entries(LABELS.items)
    .filter(([item, about]) => about.required && item !== "id_number")
    .map(([item]) => ({ item, note: "必填" }));
  needed.push({ item: "region_code", note: "登记地所属区县，6位代码" });
  showFields($("register-fields"), "new-", needed);
  if (/^\d{17}[\dX]$/.test(idNumber)) {
    $("new-birth_date").value = idNumber.slice(6, 14);
    $("new-gender").value = Number(idNumber[16]) % 2 === 1 ? "1" : "2";
  }
  // Where they register: the number's county when it is the clerk's, else the clerk's county.
  if (idNumber.startsWith(staffScope) && /^\d{6}/.test(idNumber)) {
    $("new-region_code").value = idNumber.slice(0, 6);
  } else if (staffScope.length >= 6) {
    $("new-region_code").value = staffScope.slice(0, 6);
  }
  $("new-name").focus();
}

// Fields for `entries` ({item, note}) in `container`, ids `prefix` + item: a select for coded
// items, a text box otherwise. Returns how many.
function showFields(container, prefix, entries) {
  container.replaceChildren();
  const seen = new Set();
  for (const entry of entries) {
    if (seen.has(entry.item)) continue;
    seen.add(entry.item);
    const about = LABELS.items[entry.item] ||
      REGISTRATION_EXTRAS[entry.item] || { label: entry.item, code: "" };
    const id = prefix + entry.item;
    const label = element("label", null, "field-label");
    label.htmlFor = id;
    label.append(document.createTextNode(about.label), element("small", about.code));
    const cell = element("div");
    const control = controlFor(entry.item, id);
    const note = element("span", entry.note, "field-note gap");
    note.id = id + "-note";
    const error = element("span", "", "field-error");
    error.id = id + "-error";
    control.setAttribute("aria-describedby", `${note.id} ${error.id}`);
    cell.append(control, note, error);
    container.append(label, cell);
  }
  return seen.size;
}

function controlFor(item, id) {
  let control;
  const options = LABELS.coded_items[item];
  if (options) {
    control = element("select");
    control.append(element("option", "请选择"));
    control.options[0].value = "";
    for (const option of options) {
      const node = element("option", `${option.code} ${option.label}`);
      node.value = option.code;
      control.append(node);
    }
  } else {
    control = element("input");
    control.type = item === "phone" ? "tel" : "text";
    control.autocomplete = "off";
    control.placeholder = ITEM_HINTS[item] || "";
  }
  control.id = id;
  control.name = item;
  return control;
}

// The filled fields of `container` as API items; clears the previous errors.
function filledItems(container) {
  const items = {};
  for (const control of container.querySelectorAll("input, select")) {
    control.removeAttribute("aria-invalid");
    $(control.id + "-error").textContent = "";
    const value = control.value.trim();
    if (value) items[control.name] = value;
  }
  return items;
}

// Marks the fields a 422 names; the first one gets the focus. Says whether any was marked.
function markDefects(prefix, error) {
  const defects = (error instanceof ApiError && error.problem.errors) || [];
  let first = null;
  for (const defect of defects) {
    const control = $(prefix + defect.item);
    if (!control) continue;
    control.setAttribute("aria-invalid", "true");
    $(control.id + "-error").textContent = defect.message_zh;
    first = first || control;
  }
  if (first) first.focus();
  return first !== null;
}

function say(node, text, saved = false) {
  node.className = saved ? "message saved" : "message";
  node.textContent = text;
}

// -- Saving what was collected ------------------------------------------------------------------

async function save(event) {
  event.preventDefault();
  if (!current || !current.popup) return;
  const message = $("collect-message");
  const items = filledItems($("fields"));
  if (Object.keys(items).length === 0) {
    say(message, "请至少填写一项再保存");
    $("fields").querySelector("input, select")?.focus();
    return;
  }
  const { idNumber, popup } = current;
  const body = { id_number: idNumber, person_id: popup.person_id, items };
  if (!(await submit(body, $("save"), message, "item-"))) return;
  // The popup again at once: the saved values now wait for 复核, shown as such.
  try {
    const next = await fetchPopup(idNumber);
    if (current && current.idNumber === idNumber) {
      current.popup = next;
      showPopup(next);
    }
  } catch (error) {
    // shown at the next refresh
  }
  say(message, "已提交，待复核", true);
  $("id-number").select();
  $("id-number").focus();
  await refreshUntil(idNumber, (next) => applied(next, Object.keys(items)), message,
    "已复核，登记信息已更新", "已提交，待复核；复核通过后登记信息将更新");
}

async function register(event) {
  event.preventDefault();
  if (!current || current.popup) return;
  const message = $("register-message");
  const { idNumber } = current;
  const { region_code: region, ...filled } = filledItems($("register-fields"));
  if (!/^\d{6}$/.test(region || "")) {
    $("new-region_code").setAttribute("aria-invalid", "true");
    $("new-region_code-error").textContent = region
      ? "应为6位行政区划代码，如 520102"
      : "请填写登记地所属区县的6位行政区划代码";
    say(message, "未保存：请更正标红的项目");
    $("new-region_code").focus();
    return;
  }
  const items = { ...filled, id_number: idNumber };
  const body = { id_number: idNumber, person_id: null, region_code: region, items };
  if (!(await submit(body, $("register-save"), message, "new-"))) return;
  say(message, "已提交参保登记，待复核", true);
  await refreshUntil(idNumber, (popup) => !popup.verdict_pending, message,
    "参保登记已完成", "已提交参保登记，待复核；复核通过后生成登记信息");
}

// POST the collection; on failure, says why (field by field when it can). Returns success.
async function submit(body, button, message, prefix) {
  button.disabled = true;
  say(message, "正在保存…");
  try {
    await api("POST", "/api/v1/counter/collections", {
      body,
      headers: { "Idempotency-Key": idempotencyKey() },
    });
    return true;
  } catch (error) {
    const marked = markDefects(prefix, error);
    say(message, marked ? "未保存：请更正标红的项目" : "未保存：" + problemMessage(error));
    return false;
  } finally {
    button.disabled = false;
  }
}

// The registry applies a collection asynchronously (survey → identity → matching): the popup is
// asked again until `done(popup)`, then shown, and the clerk is back at the number.
async function refreshUntil(idNumber, done, message, doneText, laterText) {
  const deadline = Date.now() + REFRESH_FOR_MS;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, REFRESH_EVERY_MS));
    if (!current || current.idNumber !== idNumber) return; // the clerk moved on
    let popup;
    try {
      popup = await fetchPopup(idNumber);
    } catch (error) {
      continue;
    }
    if (done(popup)) {
      current.popup = popup;
      showPopup(popup);
      say($("collect-message"), doneText, true);
      $("id-number").select();
      $("id-number").focus();
      return;
    }
  }
  say(message, laterText, true);
}

// The saved items have passed 复核 and left the popup, and matching's verdict has caught up with
// identity's gaps (a reason "missing" or "inaccurate" stands only while such an item does).
function applied(popup, saved) {
  const open = [...popup.missing, ...popup.inaccurate, ...(popup.pending || [])]
    .map((gap) => gap.item);
  if (saved.some((item) => open.includes(item))) return false;
  const reasons = popup.survey_reasons;
  if (popup.missing.length === 0 && reasons.includes("missing_info")) return false;
  if (popup.inaccurate.length === 0 && reasons.includes("inaccurate_info")) return false;
  return true;
}

function idempotencyKey() {
  if (window.crypto && crypto.randomUUID) return "counter-" + crypto.randomUUID();
  return "counter-" + Date.now() + "-" + Math.random().toString(16).slice(2);
}

// -- Keyboard -----------------------------------------------------------------------------------

function onKey(event) {
  if (event.key === "Escape" && !$("counter-view").hidden) {
    current = null;
    closeAll();
    $("id-number").select();
    $("id-number").focus();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", logIn);
  $("lookup-form").addEventListener("submit", lookUp);
  $("collect-form").addEventListener("submit", save);
  $("register-form").addEventListener("submit", register);
  $("logout").addEventListener("click", () => signedOut("已退出登录"));
  document.addEventListener("keydown", onKey);
  if (sessionStorage.getItem(TOKEN_KEY)) {
    signedIn().catch(() => signedOut());
  } else {
    $("username").focus();
  }
});

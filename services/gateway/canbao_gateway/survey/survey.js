// The reviewer's page (审核工作台): the grass-roots platform (基层平台) lists its division for the
// household survey, assigns households to teams and does the first review (初审); the county
// (县级经办) approves (审定). It speaks only the public API (api.md "Survey") and builds the page
// with textContent, never with HTML from the server. The token lives in sessionStorage: gone
// when the tab closes.
"use strict";

const LABELS = JSON.parse(document.getElementById("labels").textContent);
const TOKEN_KEY = "canbao.survey.token";
const PAGE_SIZE = 50;
const PLATFORM = "platform";
const COUNTY = "county";
// What each reviewer decides on, and how (api.md "Survey": review for 初审, approve for 审定).
const STAGES = {
  [PLATFORM]: { state: "submitted", path: "review", pass: "pass", passLabel: "初审通过",
                passed: "初审通过，已转县级经办审定" },
  [COUNTY]: { state: "first_reviewed", path: "approve", pass: "approve", passLabel: "审定通过",
              passed: "审定通过，调查结果将更新参保登记信息" },
};
// Tasks a household can still be (re)assigned in (the survey service refuses the others).
const ASSIGNABLE = new Set(["open", "assigned"]);
const TEAM_MAX = 3;

const $ = (id) => document.getElementById(id);
let me = null; // {username, role, scope}
let list = null; // {division, state, items, next}
let current = null; // the task shown: GET /tasks/{id}
let returnFocus = null; // what had the focus before a panel opened: a task id or household key

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

// A problem+json answer as one readable Chinese sentence: its title, then what the detail or
// the problem's own fields add (the task's current state, the items to correct).
function problemMessage(error) {
  if (!(error instanceof ApiError)) return "无法连接服务，请检查网络后重试";
  const p = error.problem;
  const type = (p.type || "").split("/").pop();
  let text = chinese(p.title) || `请求失败（${error.status}）`;
  if (type === "task-changed" && p.task) {
    const team = (p.task.team || []).join("、");
    text += `：任务当前状态为“${p.task.state_label || stateLabel(p.task.state)}”`;
    if (team) text += `（调查组：${team}）`;
    return text + "。页面已刷新为最新状态";
  }
  if (type === "invalid-items" && Array.isArray(p.errors)) {
    return text + "：" + p.errors.map((e) => e.message_zh || e.message).join("；");
  }
  if (type === "invalid-request" && Array.isArray(p.errors)) {
    const fields = p.errors.map((e) => (e.location || []).slice(1).join(".")).filter(Boolean);
    return fields.length ? `${text}（${fields.join("、")}）` : text;
  }
  if (p.detail) text += "：" + chinese(p.detail);
  return text;
}

function authorised(headers = {}) {
  const init = { Accept: "application/json", ...headers };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) init.Authorization = "Bearer " + token;
  return init;
}

async function send(method, path, { body, form, headers } = {}) {
  const init = { method, headers: authorised(headers) };
  if (form) {
    init.body = new URLSearchParams(form);
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  try {
    return await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, { title: "无法连接服务，请检查网络后重试" });
  }
}

async function failure(response, form) {
  const data = await response.json().catch(() => ({ title: `服务返回了错误（${response.status}）` }));
  if (response.status === 401 && !form) signedOut("登录已过期，请重新登录");
  return new ApiError(response.status, data);
}

async function api(method, path, options = {}) {
  const response = await send(method, path, options);
  if (!response.ok) throw await failure(response, options.form);
  return response.json().catch(() => ({}));
}

// A document behind the token (登记表, 汇总表): fetched, then saved from a blob, since a plain
// link could not carry the Authorization header.
async function download(path, fallbackName, button, message) {
  button.disabled = true;
  say(message, "正在生成文件…", "busy");
  try {
    const response = await send("GET", path, { headers: { Accept: "*/*" } });
    if (!response.ok) throw await failure(response);
    const blob = await response.blob();
    const disposition = response.headers.get("Content-Disposition") || "";
    const named = /filename="?([^";]+)"?/.exec(disposition);
    const link = element("a");
    link.href = URL.createObjectURL(blob);
    link.download = named ? named[1] : fallbackName;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
    say(message, `已下载 ${link.download}`, "ok");
  } catch (error) {
    say(message, "下载失败：" + problemMessage(error));
  } finally {
    enable(button);
  }
}

// -- Small helpers ------------------------------------------------------------------------------

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function button(text, className, label) {
  const node = element("button", text, className);
  node.type = "button";
  if (label) node.setAttribute("aria-label", label);
  return node;
}

// A button back in use after its request; it takes the focus back if disabling it lost it
// (a disabled control cannot hold the focus), so the keyboard goes on from where it was.
function enable(control) {
  control.disabled = false;
  if (!control.hidden && document.activeElement === document.body) control.focus();
}

function say(node, text, kind = "") {
  node.className = "message" + (node.id === "message" ? " banner" : "") + (kind ? " " + kind : "");
  node.textContent = text;
}

function stateLabel(state) {
  return LABELS.task_states[state] || state;
}

function reasonsText(reasons) {
  return reasons.map((r) => LABELS.survey_reasons[r] || r).join("、") || "—";
}

// An item's value as the reviewer reads it: a code with its label (1 男), else as answered.
function itemValue(item, value) {
  if (value === null || value === undefined || value === "") return "—";
  const table = LABELS.coded_items[item];
  return table && table[value] ? `${value} ${table[value]}` : value;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString("zh-CN", { hour12: false }) : "—";
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) search.set(key, value);
  const text = search.toString();
  return text ? "?" + text : "";
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
  const who = await api("GET", "/api/v1/auth/me");
  if (who.role !== PLATFORM && who.role !== COUNTY) {
    const role = LABELS.roles[who.role] || who.role;
    signedOut(`${who.username}（${role}）无审核权限：本页面供基层平台初审和县级经办审定使用`);
    return;
  }
  me = who;
  $("who-name").textContent = `${me.username}（${LABELS.roles[me.role]}，辖区 ${me.scope}）`;
  $("who").hidden = false;
  $("login-view").hidden = true;
  $("work-view").hidden = false;
  say($("message"), "");
  $("make-list").hidden = me.role !== PLATFORM;
  $("pass").textContent = STAGES[me.role].passLabel;
  $("decision-title").textContent = me.role === PLATFORM ? "初审" : "审定";
  $("division").value = me.scope;
  // The county sees what waits for its approval first; the platform its whole division.
  $("state-filter").value = me.role === COUNTY ? "first_reviewed" : "";
  closePanels();
  $("division").focus();
  await loadDivision();
}

function signedOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  me = null;
  list = null;
  current = null;
  $("who").hidden = true;
  $("work-view").hidden = true;
  closePanels();
  $("login-view").hidden = false;
  $("login-message").textContent = message || "";
  // A reviewer's workstation may be shared: the next one starts from an empty form.
  $("username").value = "";
  $("password").value = "";
  $("username").focus();
}

// -- The division: its tasks, progress and ledger -----------------------------------------------

function division() {
  const input = $("division");
  const code = input.value.replace(/\s+/g, "");
  input.value = code;
  if (!/^\d{2,12}$/.test(code)) {
    input.setAttribute("aria-invalid", "true");
    say($("message"), "行政区划代码应为2至12位数字，如 520102");
    input.focus();
    return null;
  }
  input.removeAttribute("aria-invalid");
  return code;
}

async function search(event) {
  event.preventDefault();
  await loadDivision();
}

async function loadDivision() {
  const code = division();
  if (code === null) return;
  closePanels();
  say($("message"), "正在查询…", "busy");
  const [loaded] = await Promise.all([loadTasks(code, $("state-filter").value), loadProgress(code)]);
  if (loaded) say($("message"), `已查询辖区 ${code}：${summaryText()}`, "ok");
}

// A page of tasks into the list (a new list unless `more`). Answers can arrive out of order (the
// list loaded at login still on its way when the reviewer asks for another): one for a list
// that has since been replaced is dropped, never mixed into the new one.
async function loadTasks(code, state, more = false) {
  if (!more) list = { division: code, state, items: [], next: null };
  const target = list;
  try {
    const page = await api("GET", "/api/v1/survey/tasks" + query({
      region: code, state, cursor: more ? target.next : "", limit: String(PAGE_SIZE),
    }));
    if (list !== target) return false;
    target.items.push(...page.items);
    target.next = page.next;
    showTasks();
    return true;
  } catch (error) {
    if (list !== target) return false;
    showTasks();
    say($("message"), "查询失败：" + problemMessage(error));
    return false;
  }
}

async function loadMore() {
  if (!list || !list.next) return;
  const before = list.items.length;
  if (await loadTasks(list.division, list.state, true)) {
    say($("message"), `已加载更多：${summaryText()}`, "ok");
    // The first task of the new page takes the focus, so the keyboard goes on from there.
    const next = list.items[before];
    const opener = next && document.querySelector(`button[data-open="${next.task_id}"]`);
    (opener || $("more")).focus();
  }
}

// The loaded tasks by household, in the order the API gives them (division, household).
function households() {
  const groups = new Map();
  for (const task of list ? list.items : []) {
    const key = task.household || "task:" + task.task_id;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(task);
  }
  return groups;
}

function summaryText() {
  if (!list) return "";
  const count = list.items.length;
  if (count === 0) return "没有符合条件的调查任务";
  const more = list.next ? "，还有更多未加载" : "";
  return `共 ${households().size} 户、${count} 个调查任务${more}`;
}

function showTasks() {
  const table = $("tasks");
  for (const body of [...table.tBodies]) body.remove();
  let number = 0;
  for (const [key, tasks] of households()) {
    number += 1;
    const body = element("tbody");
    body.dataset.household = key;
    const head = element("tr", null, "household");
    const cell = element("th");
    cell.colSpan = 7;
    cell.scope = "rowgroup";
    const title = `第 ${number} 户`;
    cell.append(element("span", `${title}　区划 ${tasks[0].region_code}　${tasks.length} 个调查任务`));
    if (me && me.role === PLATFORM && tasks.some((t) => ASSIGNABLE.has(t.state))) {
      const assign = button("分配调查组", "secondary small", `为${title}分配调查组`);
      assign.dataset.assign = key;
      assign.addEventListener("click", () => openAssign(key, title));
      cell.append(assign);
    }
    head.append(cell);
    body.append(head);
    for (const task of tasks) body.append(taskRow(task));
    table.append(body);
  }
  table.hidden = !list || list.items.length === 0;
  $("tasks-summary").textContent = summaryText();
  $("more").hidden = !list || !list.next;
}

function taskRow(task) {
  const row = element("tr");
  row.dataset.taskId = task.task_id;
  const person = task.person || {};
  const name = person.name || "（姓名未登记）";
  row.append(element("td", name), element("td", person.id_number || "—", "number"),
    element("td", person.address || "—"), element("td", reasonsText(task.survey_reasons)));
  const state = element("td", task.state_label || stateLabel(task.state), "state " + task.state);
  if (task.closed_reason_label) state.title = task.closed_reason_label;
  row.append(state, element("td", task.team.join("、") || "—"));
  const open = button("打开", "small", `打开 ${name} 的调查任务`);
  open.dataset.open = task.task_id;
  open.addEventListener("click", () => openTask(task.task_id));
  const actions = element("td");
  actions.append(open);
  row.append(actions);
  return row;
}

let progressAsked = 0; // the latest progress asked for: an older answer is dropped

async function loadProgress(code) {
  const region = code.slice(0, 6);
  const asked = ++progressAsked;
  try {
    const p = await api("GET", "/api/v1/survey/progress" + query({ region }));
    if (asked !== progressAsked) return;
    $("teams").textContent = "";
    const rate = p.survey_rate === null ? "—" : (p.survey_rate * 100).toFixed(1) + "%";
    $("progress").textContent = `辖区 ${p.division} 调查率 ${rate}（已调查 ${p.surveyed} 人 / ` +
      `需调查 ${p.needing_survey} 人，已审定 ${p.approved} 人）`;
    const teams = p.open_tasks_by_team.filter((t) => t.team.length);
    if (teams.length) {
      $("teams").textContent = "调查中任务：" +
        teams.map((t) => `${t.team.join("、")} ${t.open_tasks} 个`).join("；");
    }
  } catch (error) {
    if (asked !== progressAsked) return;
    $("progress").textContent = "调查率暂无法查询：" + problemMessage(error);
    $("teams").textContent = "";
  }
}

// POST /lists (platform): the division's people needing a survey who have no task waiting.
async function makeList() {
  const code = division();
  if (code === null) return;
  if (code.length > 6) {
    say($("message"), "调查名单按区县（6位代码）或其上级生成，请输入2至6位行政区划代码");
    $("division").focus();
    return;
  }
  const control = $("make-list");
  control.disabled = true;
  say($("message"), `正在为辖区 ${code} 生成调查名单，较大的区县可能需要几分钟…`, "busy");
  try {
    const made = await api("POST", "/api/v1/survey/lists", { body: { region_code: code } });
    await Promise.all([loadTasks(code, $("state-filter").value), loadProgress(code)]);
    say($("message"), `已生成调查名单：新增调查任务 ${made.tasks} 个，涉及 ${made.households} 户` +
      `（核对辖区人员 ${made.residents} 人）`, "ok");
  } catch (error) {
    say($("message"), "未生成调查名单：" + problemMessage(error));
  } finally {
    enable(control);
  }
}

function ledger(format, control) {
  const code = division();
  if (code === null) return;
  if (code.length < 6) {
    say($("message"), "汇总表按区县或村（社区）生成，请输入6位及以上的行政区划代码");
    $("division").focus();
    return;
  }
  download(`/api/v1/survey/ledger/${code}?format=${format}`, `ledger-${code}.${format}`, control,
    $("message"));
}

// -- Assigning a household to a team (platform) -------------------------------------------------

async function openAssign(key, title) {
  const tasks = households().get(key) || [];
  const task = tasks.find((t) => ASSIGNABLE.has(t.state));
  if (!task) return;
  closePanels();
  returnFocus = { household: key };
  const panel = $("assign-view");
  panel.dataset.taskId = task.task_id;
  panel.dataset.household = key;
  panel.dataset.title = title;
  $("assign-household").textContent =
    `${title}（${tasks.map((t) => (t.person && t.person.name) || "—").join("、")}），区划 ${task.region_code}`;
  say($("assign-message"), "正在读取调查员名册…", "busy");
  $("roster-list").replaceChildren();
  $("assign-save").disabled = true;
  panel.hidden = false;
  $("assign-title").focus();
  try {
    const roster = await api("GET", "/api/v1/survey/surveyors" +
      query({ region: task.region_code.slice(0, 6) }));
    showRoster(roster.filter((s) => s.active), task.team);
  } catch (error) {
    say($("assign-message"), "无法读取调查员名册：" + problemMessage(error));
  }
}

function showRoster(roster, team) {
  const container = $("roster-list");
  container.replaceChildren();
  roster.forEach((surveyor, index) => {
    const id = "surveyor-" + index;
    const box = element("input");
    box.type = "checkbox";
    box.id = id;
    box.value = surveyor.username;
    box.checked = team.includes(surveyor.username);
    const label = element("label",
      `${surveyor.name}（${surveyor.username}，调查证 ${surveyor.certificate_number}` +
      `${surveyor.contracted ? "，购买服务" : ""}）`);
    label.htmlFor = id;
    const line = element("div", null, "choice");
    line.append(box, label);
    container.append(line);
  });
  if (roster.length === 0) {
    say($("assign-message"), "本县调查员名册中还没有调查员，请县级经办先登记调查员");
    return;
  }
  say($("assign-message"), "");
  $("assign-save").disabled = false;
}

async function assign(event) {
  event.preventDefault();
  const panel = $("assign-view");
  const team = [...$("roster-list").querySelectorAll("input:checked")].map((box) => box.value);
  if (team.length < 1 || team.length > TEAM_MAX) {
    say($("assign-message"), `请选择1至${TEAM_MAX}名调查员（调查组2至3人为宜）`);
    ($("roster-list").querySelector("input") || $("assign-cancel")).focus();
    return;
  }
  const save = $("assign-save");
  save.disabled = true;
  say($("assign-message"), "正在分配…", "busy");
  try {
    const done = await api("POST", `/api/v1/survey/tasks/${panel.dataset.taskId}/assign`,
      { body: { team } });
    const title = panel.dataset.title;
    closePanels();
    await Promise.all([loadTasks(list.division, list.state), loadProgress(list.division)]);
    say($("message"), `已将${title}的 ${done.assigned.length} 个调查任务分配给 ${done.team.join("、")}`, "ok");
    restoreFocus();
  } catch (error) {
    say($("assign-message"), "未分配：" + problemMessage(error));
  } finally {
    enable(save);
  }
}

// -- A task: the submission beside the current record, and the decision -------------------------

async function openTask(taskId, { keepMessage = false } = {}) {
  try {
    const task = await api("GET", `/api/v1/survey/tasks/${taskId}`);
    closePanels();
    returnFocus = { task: taskId };
    current = task;
    showTask(task);
    say($("message"), ""); // what it said was about the list
    say($("task-message"), "");
    if (!keepMessage) say($("decision-message"), "");
    $("task-view").hidden = false;
    $("task-title").focus();
    return true;
  } catch (error) {
    say($("message"), "无法打开调查任务：" + problemMessage(error));
    return false;
  }
}

function showTask(task) {
  const person = task.person || {};
  $("task-title").textContent =
    `调查任务　${person.name || "（姓名未登记）"}　${person.id_number || ""}`;
  const badges = $("task-state");
  badges.replaceChildren(element("span", task.state_label || stateLabel(task.state),
    "state " + task.state));
  if (task.channel === "self") badges.append(element("span", "自助申报，经办机构确认"));
  if (task.channel === "change") badges.append(element("span", "变更登记（基层平台）"));
  if (task.team.length) badges.append(element("span", "调查组：" + task.team.join("、")));
  if (task.closed_reason_label) badges.append(element("span", task.closed_reason_label));
  badges.append(element("span", "区划 " + task.region_code));
  $("task-comment").hidden = !task.comment;
  $("task-comment").textContent = task.comment ? "上次退回意见：" + task.comment : "";

  showSubmission(task.submission);
  showRecord(task);

  const stage = me && STAGES[me.role];
  const decides = Boolean(stage && task.state === stage.state && task.submission);
  $("decision-form").hidden = !decides;
  if (decides) {
    $("comment").value = "";
    $("comment").removeAttribute("aria-invalid");
    $("comment-error").textContent = "";
  }
}

function showSubmission(submission) {
  $("no-submission").hidden = Boolean(submission);
  $("submission").hidden = !submission;
  if (!submission) return;
  const facts = $("submission-facts");
  facts.replaceChildren();
  const fact = (term, value) => {
    if (value === undefined || value === null || value === "") return;
    facts.append(element("dt", term), element("dd", value));
  };
  const change = submission.contact === "walk_in"; // 变更登记 at the platform
  fact(change ? "登记人" : "调查员", submission.submitted_by);
  fact("调查时间", when(submission.visited_at));
  fact("联系方式", LABELS.contacts[submission.contact] || submission.contact);
  fact("提交时间", when(submission.submitted_at));
  let outcome = submission.outcome_label || LABELS.outcomes[submission.outcome];
  if (submission.verified_reason) {
    outcome += `：${submission.verified_reason} ${submission.verified_reason_label ||
      LABELS.statuses[submission.verified_reason] || ""}`;
  }
  fact("调查结果", outcome);
  const elsewhere = (submission.insured_elsewhere || []).map((s) => {
    const insurance = LABELS.insurances.find((i) => i.key === s.insurance);
    return `${insurance ? insurance.label : s.insurance} ${s.status} ` +
      `${LABELS.statuses[s.status] || ""}${s.region_code ? "（" + s.region_code + "）" : ""}`;
  });
  fact("异地参保", elsewhere.join("；"));
  const declaration = submission.declaration;
  if (declaration) {
    const who = LABELS.signatories[declaration.signed_by] || declaration.signed_by;
    const authorised = declaration.signed_by === "agent"
      ? (declaration.agent_authorised ? "，有书面授权" : "，无书面授权") : "";
    fact("本人声明", `${who}签字，${declaration.signed_on}${authorised}`);
  } else {
    fact("本人声明", "无");
  }
  fact("备注", submission.note);
  fact("变更原因", submission.reason);
  fact("查验证件", (submission.documents || []).map((d) => d.label).join("、"));

  const rows = $("submission-items").tBodies[0];
  rows.replaceChildren(...submission.items.map((item) => {
    const row = element("tr");
    const head = element("th", item.label);
    head.scope = "row";
    head.append(element("small", item.code));
    row.append(head, element("td", itemValue(item.item, item.value)));
    return row;
  }));
  $("submission-items").hidden = submission.items.length === 0;
  $("no-items").hidden = submission.items.length !== 0;

  $("decisions").replaceChildren(...submission.decisions.map((d) => {
    const stage = LABELS.stages[d.stage] || d.stage;
    const decision = LABELS.decisions[d.decision] || d.decision;
    const comment = d.comment ? `，意见：${d.comment}` : "";
    return element("li", `${stage}${decision}　${d.decided_by}　${when(d.decided_at)}${comment}`,
      d.decision === "reject" ? "rejected" : "passed");
  }));
  $("no-decisions").hidden = submission.decisions.length !== 0;
}

function showRecord(task) {
  const prefill = $("prefill").tBodies[0];
  prefill.replaceChildren(...(task.prefill || []).map((item) => {
    const row = element("tr");
    const head = element("th", item.label);
    head.scope = "row";
    head.append(element("small", item.code));
    const gap = task.missing.some((m) => m.item === item.item) ||
      task.inaccurate.some((m) => m.item === item.item);
    row.append(head, element("td", itemValue(item.item, item.value), gap ? "gap" : ""));
    return row;
  }));

  const statuses = $("statuses").tBodies[0];
  statuses.replaceChildren(...LABELS.insurances.map((insurance) => {
    const code = task.statuses ? task.statuses[insurance.key] : null;
    const row = element("tr");
    const head = element("th", insurance.label);
    head.scope = "row";
    const cell = element("td", code ? `${code} ${LABELS.statuses[code] || ""}` : "—");
    if (code && code.startsWith("9") && code !== "95") cell.className = "uninsured";
    row.append(head, cell);
    return row;
  }));

  $("reasons").replaceChildren(
    ...task.survey_reasons.map((r) => element("li", LABELS.survey_reasons[r] || r)));
  const gaps = [
    ...task.missing.map((g) => `${g.label}（${g.code}）：缺失`),
    ...task.inaccurate.map((g) => `${g.label}（${g.code}）：不准确，${g.reason}`),
  ];
  $("gaps").replaceChildren(...gaps.map((text) => element("li", text)));
  $("gaps-block").hidden = gaps.length === 0;

  const members = $("members").tBodies[0];
  members.replaceChildren(...(task.household_members || []).map((m) => {
    const row = element("tr");
    const mine = m.task_id === task.task_id;
    if (mine) row.className = "this";
    const standing = m.complete
      ? "登记完整"
      : (LABELS.registration[m.registration] || "需调查登记");
    const survey = m.task_id
      ? (mine ? "本任务" : stateLabel(m.task_state))
      : "—";
    row.append(element("td", LABELS.relations[m.relation] || m.relation || "—"),
      element("td", m.name || "—"), element("td", m.id_number || "—", "number"),
      element("td", standing, m.complete ? "complete" : "incomplete"), element("td", survey));
    return row;
  }));
}

// 初审 (platform) or 审定 (county): pass, or send back to the team with the reason.
async function decide(decision) {
  if (!current || !me) return;
  const stage = STAGES[me.role];
  const comment = $("comment").value.trim();
  const message = $("decision-message");
  $("comment").removeAttribute("aria-invalid");
  $("comment-error").textContent = "";
  if (decision === "reject" && !comment) {
    $("comment").setAttribute("aria-invalid", "true");
    $("comment-error").textContent = "退回须填写审核意见（退回原因）";
    say(message, "未退回：请填写审核意见，说明退回原因");
    $("comment").focus();
    return;
  }
  const taskId = current.task_id;
  const buttons = [$("pass"), $("reject")];
  buttons.forEach((b) => { b.disabled = true; });
  let focus = null; // after the buttons are enabled again: a disabled one takes no focus
  say(message, "正在提交…", "busy");
  try {
    await api("POST", `/api/v1/survey/tasks/${taskId}/${stage.path}`,
      { body: { decision: decision === "reject" ? "reject" : stage.pass, comment } });
    const done = decision === "reject" ? "已退回调查组补正" : stage.passed;
    await openTask(taskId, { keepMessage: true });
    say(message, done, "ok");
    refreshListQuietly();
  } catch (error) {
    say(message, "未办理：" + problemMessage(error));
    const type = error instanceof ApiError ? (error.problem.type || "").split("/").pop() : "";
    if (type === "task-changed" || type === "task-not-found") {
      // Someone else acted first: show the task as it is now, keeping the message.
      await openTask(taskId, { keepMessage: true });
      refreshListQuietly();
    } else {
      focus = type === "invalid-request" ? $("comment") : $(decision === "reject" ? "reject" : "pass");
    }
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    if (focus) focus.focus();
  }
}

function refreshListQuietly() {
  if (list) loadTasks(list.division, list.state);
  if (list) loadProgress(list.division);
}

// -- Panels and focus ---------------------------------------------------------------------------

function closePanels() {
  $("task-view").hidden = true;
  $("assign-view").hidden = true;
  current = null;
}

// Back to the control that opened the panel (or the list, if that row has gone).
function restoreFocus() {
  let target = null;
  if (returnFocus && returnFocus.task) {
    target = document.querySelector(`button[data-open="${returnFocus.task}"]`);
  } else if (returnFocus && returnFocus.household) {
    target = document.querySelector(`button[data-assign="${returnFocus.household}"]`) ||
      document.querySelector(`tbody[data-household="${returnFocus.household}"] button`);
  }
  returnFocus = null;
  (target || $("search")).focus();
}

function closeAndReturn() {
  closePanels();
  restoreFocus();
}

function onKey(event) {
  if (event.key !== "Escape" || $("work-view").hidden) return;
  if (!$("task-view").hidden || !$("assign-view").hidden) {
    event.preventDefault();
    closeAndReturn();
  }
}

function fillStates() {
  const select = $("state-filter");
  const all = element("option", "全部状态");
  all.value = "";
  select.append(all);
  for (const [state, label] of Object.entries(LABELS.task_states)) {
    const option = element("option", label);
    option.value = state;
    select.append(option);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  fillStates();
  $("login-form").addEventListener("submit", logIn);
  $("division-form").addEventListener("submit", search);
  $("make-list").addEventListener("click", makeList);
  $("ledger-pdf").addEventListener("click", (e) => ledger("pdf", e.currentTarget));
  $("ledger-xlsx").addEventListener("click", (e) => ledger("xlsx", e.currentTarget));
  $("more").addEventListener("click", loadMore);
  $("assign-form").addEventListener("submit", assign);
  $("assign-cancel").addEventListener("click", closeAndReturn);
  $("task-close").addEventListener("click", closeAndReturn);
  $("form-pdf").addEventListener("click", (e) => {
    if (current) download(`/api/v1/survey/tasks/${current.task_id}/form.pdf`,
      `form-${current.task_id}.pdf`, e.currentTarget, $("task-message"));
  });
  $("pass").addEventListener("click", () => decide("pass"));
  $("reject").addEventListener("click", () => decide("reject"));
  $("logout").addEventListener("click", () => signedOut("已退出登录"));
  document.addEventListener("keydown", onKey);
  if (sessionStorage.getItem(TOKEN_KEY)) {
    signedIn().catch(() => signedOut());
  } else {
    $("username").focus();
  }
});

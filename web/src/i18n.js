// Labels in Chinese and English.  Unit names come from the registry (Chinese)
// and are never translated; only the interface's own words are here.
const LABELS = {
  today: ['今日', 'Today'],
  missing: ['未报', 'Non-reporters'],
  late: ['迟报', 'Late'],
  trends: ['趋势', 'Trends'],
  alerts: ['预警', 'Alerts'],
  urgent: ['紧急', 'Urgent'],
  villages: ['村（社区）', 'Villages'],
  signin: ['登录', 'Sign in'],
  signout: ['退出', 'Sign out'],
  user: ['用户名', 'User'],
  password: ['密码', 'Password'],
  bad_login: ['用户名或密码错误', 'Invalid user or password'],
  throttled: ['尝试次数过多，请稍后再试', 'Too many attempts, try again later'],
  not_found: ['未找到', 'Not found'],
  not_found_text: ['该页面或单位不存在，或不在您的管辖范围内。', 'This page or unit does not exist, or is outside your area.'],
  go_home: ['返回首页', 'Back to my unit'],
  period: ['日期', 'Day'],
  deadline: ['截止', 'Deadline'],
  deadline_in: ['距截止', 'Until deadline'],
  deadline_passed: ['已过截止', 'Past deadline by'],
  no_deadline: ['无截止时间', 'No deadline'],
  as_of: ['数据时间', 'As of'],
  lag: ['延迟', 'Pipeline lag'],
  live: ['实时', 'Live'],
  offline: ['未连接', 'Not live'],
  over_villages: ['村（社区）', 'Villages'],
  over_children: ['直属下级', 'Direct children'],
  expected: ['应报', 'Expected'],
  reported: ['已报', 'Reported'],
  zero: ['零报告', 'Zero'],
  missing_n: ['未报', 'Missing'],
  late_n: ['迟报', 'Late'],
  copied: ['数据雷同', 'Same as day before'],
  filed_state: ['上报状态', 'Filed state'],
  st_collecting: ['汇总中', 'Collecting'],
  st_awaiting_signoff: ['待签发', 'Awaiting sign-off'],
  st_filing: ['上报中', 'Filing'],
  st_filed: ['已上报', 'Filed'],
  st_revised: ['已修订', 'Revised'],
  filed_by: ['签发人', 'by'],
  filed_at: ['上报时间', 'filed at'],
  sign: ['签发', 'Sign off'],
  signing: ['签发中…', 'Signing…'],
  sign_failed: ['签发失败', 'Sign-off failed'],
  no_filing: ['尚无汇总', 'Nothing aggregated yet'],
  children: ['下级单位', 'Units below'],
  name: ['名称', 'Name'],
  code: ['代码', 'Code'],
  status: ['状态', 'Status'],
  coverage: ['报送情况', 'Coverage'],
  minutes_late: ['迟报(分钟)', 'Minutes late'],
  first_received: ['首次报送', 'First report'],
  filed: ['已上报', 'Filed'],
  yes: ['是', 'yes'],
  no: ['否', 'no'],
  all: ['全部', 'All'],
  s_reported: ['已报', 'reported'],
  s_zero: ['零报告', 'zero'],
  s_late: ['迟报', 'late'],
  s_missing: ['未报', 'missing'],
  township: ['乡镇（街道）', 'Township'],
  reminders: ['已提醒(次)', 'Reminders'],
  last_reminded: ['最近提醒', 'Last reminded'],
  days_missed: ['连续未报(天)', 'Days missed'],
  csv: ['导出 CSV', 'Download CSV'],
  none: ['无', 'None'],
  indicator: ['指标', 'Indicator'],
  indicators: ['指标汇总', 'Indicators'],
  completeness: ['报送完整率（%）', 'Completeness (% of villages)'],
  calendar: ['各村每日报送', 'Each village, day by day'],
  calendar_too_big: ['村数过多：请选择县或乡镇', 'Too many villages: choose a county or township'],
  unit: ['单位', 'Unit'],
  rule: ['规则', 'Rule'],
  value: ['数值', 'Value'],
  threshold: ['阈值', 'Threshold'],
  raised_at: ['触发时间', 'Raised at'],
  incident: ['事件', 'Incident'],
  severity: ['级别', 'Severity'],
  occurred_at: ['发生时间', 'Occurred'],
  hops: ['逐级上报', 'Hops'],
  village: ['村', 'Village'],
  county: ['县', 'County'],
  province: ['省', 'Province'],
  history: ['修订记录', 'Revision history'],
  version: ['版本', 'Version'],
  kind: ['类型', 'Kind'],
  received_at: ['接收时间', 'Received'],
  report: ['本日报告', 'Report of the day'],
  no_report: ['本日未报', 'No report for this day'],
  loading: ['加载中…', 'Loading…'],
  error: ['出错了', 'Something went wrong'],
  lang: ['English', '中文'],
  pending_signoffs: ['待签发', 'Waiting for sign-off'],
  days30: ['近30天', 'Last 30 days'],
  days7: ['近7天', 'Last 7 days'],
  hop_village: ['村', 'village'],
  hop_township: ['乡镇', 'township'],
  hop_county: ['县', 'county'],
  hop_province: ['省', 'province'],
  seconds: ['秒', 's'],
  minutes: ['分钟', 'min'],
  hours: ['小时', 'h'],
};

let lang = localStorage.getItem('rc.lang') || 'zh';

export function t(key) {
  const l = LABELS[key];
  if (!l) return key;
  return lang === 'en' ? l[1] : l[0];
}

export function currentLang() { return lang; }

export function setLang(l) {
  lang = l === 'en' ? 'en' : 'zh';
  localStorage.setItem('rc.lang', lang);
  document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
}

// Indicator names are the .proto field names; the Chinese label is the
// notices' wording, the English one is the field name with spaces.
const INDICATORS_ZH = {
  households_visited: '走访户数', persons_screened: '排查人数', temperature_checks: '测温人次',
  arrivals_risk_areas: '中高风险地区来返人员', arrivals_abroad: '境外来返人员',
  investigation_requests: '协查人员', close_contacts: '密切接触者', secondary_contacts: '次密切接触者',
  cold_chain_workers: '冷链从业人员', released_observation: '解除医学观察人员',
  home_observation: '居家观察', central_isolation: '集中隔离', fever_referred: '发热转诊',
  suspected: '疑似病例', confirmed: '确诊病例', asymptomatic: '无症状感染者',
  nucleic_acid_sampled: '核酸采样', vaccinated: '疫苗接种', elderly_alone: '独居老人',
  disabled: '残疾人', pregnant: '孕产妇', left_behind_children: '留守儿童', orphans: '散居孤儿',
  hardship_households: '困难家庭', tenants: '租户及集体宿舍人员', assistance_granted: '临时救助',
  gatherings_postponed: '婚丧事宜缓办简办', staff_on_duty: '在岗工作人员', volunteers: '志愿者',
  masks: '口罩', thermometers: '体温计', disinfectant_kg: '消毒液(kg)',
};

export function indicatorLabel(name) {
  if (lang === 'en') return name.replace(/_/g, ' ');
  return INDICATORS_ZH[name] || name;
}

export function statusLabel(s) { return t('s_' + s); }

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  // Officials read Beijing time whatever the browser's zone.
  return d.toLocaleString(lang === 'en' ? 'en-GB' : 'zh-CN',
    { timeZone: 'Asia/Shanghai', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

export function fmtDuration(seconds) {
  if (seconds == null || isNaN(seconds)) return '—';
  const s = Math.abs(Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (h > 0) return `${h}${t('hours')} ${m}${t('minutes')}`;
  if (m > 0) return `${m}${t('minutes')} ${sec}${t('seconds')}`;
  return `${sec}${t('seconds')}`;
}

/**
 * Times for people, in `mail.timeZone` (an IANA name): "2026-11-22 09:05:07 EST".
 * Seconds are always shown (received-fax mails want them; reports do no harm).
 */
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
      timeZoneName: "short",
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** "2026-11-22 09:05:07 EST"; an invalid date gives "unknown time". */
export function formatTime(date: Date | number, timeZone = "UTC"): string {
  const d = typeof date === "number" ? new Date(date) : date;
  if (Number.isNaN(d.getTime())) return "unknown time";
  const parts: Record<string, string> = {};
  for (const p of formatter(timeZone).formatToParts(d)) parts[p.type] = p.value;
  const zone = timeZone === "UTC" || timeZone === "Etc/UTC" ? "UTC" : (parts["timeZoneName"] ?? timeZone);
  return `${parts["year"]}-${parts["month"]}-${parts["day"]} ${parts["hour"]}:${parts["minute"]}:${parts["second"]} ${zone}`;
}

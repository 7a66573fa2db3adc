/** What nodemailer rejects with when the server refuses: tests read the reply line. */
export interface SmtpFailure {
  response?: string;
  responseCode?: number;
}

/** Await an SMTP send expected to be refused and return the refusal (fails the test if it succeeds). */
export async function failure(p: Promise<unknown>): Promise<SmtpFailure> {
  try {
    await p;
  } catch (err) {
    return err as SmtpFailure;
  }
  throw new Error("expected the SMTP command to fail");
}

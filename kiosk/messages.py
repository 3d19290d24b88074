"""What the kiosk shows applicants, as English message ids that kiosk.i18n translates.

Each notice may hold {name} fields, filled from the controller's notice_args
after translation.
"""

from __future__ import annotations

from broker.contract import ErrorCode

CONNECTED = "Connected to the queue server"
DISCONNECTED = "Not connected to the queue server"
STALE = "The queue server is not answering"
OFFLINE_BANNER = "No tickets can be issued right now. Please ask staff."

UNREACHABLE = "The queue server cannot be reached. Please ask staff."
UNEXPECTED = "Something went wrong. Please ask staff."
PRINT_FAILED = "Your ticket could not be printed. Please show this number to staff."
PAPER_OUT = "The ticket printer is out of paper. Please ask staff."
PRINTER_DOWN = "The ticket printer is not working. Please ask staff."
QUOTA_REACHED = (
    "All of today's tickets for this service are taken. "
    "Please come back on the next working day."
)
REJECTED = "No ticket could be issued. Please ask staff."
CODE_INVALID = "An appointment code has 4 to 16 letters or digits."
TOO_EARLY = (
    "You are early for your appointment. Check-in opens {minutes} minutes "
    "before your appointment time."
)
TOO_LATE = (
    "Check-in closed {minutes} minutes after your appointment time. "
    "Please take a normal ticket."
)

REJECTED_BY_CODE: dict[ErrorCode, str] = {
    ErrorCode.QUOTA_REACHED: QUOTA_REACHED,
    ErrorCode.UNKNOWN_SERVICE: "This service is not offered at this office.",
    ErrorCode.UNKNOWN_CATEGORY: "This priority group is not offered at this office.",
    ErrorCode.UNAVAILABLE: "The queue server has a problem. Please ask staff.",
    ErrorCode.APPOINTMENT_NOT_FOUND: (
        "This appointment code was not found. Please check the code and try again."
    ),
    ErrorCode.APPOINTMENT_USED: "This appointment has already been checked in.",
    ErrorCode.APPOINTMENT_TOO_EARLY: TOO_EARLY,
    ErrorCode.APPOINTMENT_TOO_LATE: TOO_LATE,
}

PRINTER_WARNINGS = {
    "paper_low": "Paper low",
    "paper_out": "Out of paper",
    "offline": "Printer offline",
    "error": "Printer error",
}

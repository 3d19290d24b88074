"""Staff alerts from retained device statuses: kiosk printers, devices offline."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from broker.contract import DeviceStatus, Role
from broker.site import Site


class AlertLevel(StrEnum):
    """The urgency of an alert; an error stops a device from doing its job."""

    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Alert:
    """One problem of one device, in Indonesian and English."""

    device: str
    level: AlertLevel
    text_id: str
    text_en: str


# Kiosk status detail "printer" values (kiosk.printers.PrinterStatus, plus
# "error" when the printer cannot be opened) that need staff.
_PRINTER_ALERTS: dict[str, tuple[AlertLevel, str, str]] = {
    "paper_low": (AlertLevel.WARNING, "kertas hampir habis", "paper is low"),
    "paper_out": (AlertLevel.ERROR, "kertas habis", "out of paper"),
    "offline": (AlertLevel.ERROR, "printer mati", "printer is offline"),
    "error": (AlertLevel.ERROR, "printer bermasalah", "printer error"),
}


def alert_for(site: Site, status: DeviceStatus) -> Alert | None:
    """Return the alert a kiosk's or display's status raises, or None if it is fine."""
    if status.role is Role.KIOSK:
        kiosk = site.kiosk(status.device)
        name = kiosk.name if kiosk else f"Kiosk {status.device}"
        return _kiosk_alert(f"kiosk/{status.device}", name, status)
    if status.role is Role.DISPLAY and not status.online:
        display = site.display(status.device)
        name = display.name if display else f"Layar {status.device}"
        return Alert(
            f"display/{status.device}",
            AlertLevel.WARNING,
            f"{name}: tidak terhubung",
            f"{name}: offline",
        )
    return None


def _kiosk_alert(key: str, name: str, status: DeviceStatus) -> Alert | None:
    if not status.online:
        return Alert(
            key,
            AlertLevel.ERROR,
            f"{name}: tidak terhubung",
            f"{name}: offline",
        )
    printer = status.detail.get("printer")
    if printer not in _PRINTER_ALERTS:
        return None
    level, text_id, text_en = _PRINTER_ALERTS[printer]
    error = status.detail.get("printer_error")
    if printer == "error" and isinstance(error, str) and error:
        text_en = f"{text_en}: {error}"
    return Alert(key, level, f"{name}: {text_id}", f"{name}: {text_en}")


class AlertBoard:
    """The current alert of each device, replaced by each new status of it."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self._alerts: dict[str, Alert] = {}

    def apply(self, status: DeviceStatus) -> bool:
        """Apply a device's status; return whether the list of alerts changed."""
        key = f"{status.role.value}/{status.device}"
        alert = alert_for(self.site, status)
        if self._alerts.get(key) == alert:
            return False
        if alert is None:
            del self._alerts[key]
        else:
            self._alerts[key] = alert
        return True

    def alerts(self) -> list[Alert]:
        """Return the alerts, errors first, then by device."""
        return sorted(
            self._alerts.values(),
            key=lambda alert: (alert.level is not AlertLevel.ERROR, alert.device),
        )

"""Status and feedback lines of the counter terminal, Indonesian first, then English."""

STATUS_CONNECTED = "Terhubung / Connected"
STATUS_NO_BROKER = (
    "Tidak terhubung ke server antrean / Not connected to the queue server"
)
STATUS_NO_ENGINE = "Mesin antrean tidak aktif / The queue engine is not running"
FEEDBACK_QUEUED = (
    "Offline: {title} dikirim saat terhubung kembali. / "
    "Not connected: it is sent when the connection returns."
)
FEEDBACK_RESENDING = (
    "{title}: belum ada jawaban, dikirim ulang. / No reply yet; sending it again."
)
FEEDBACK_GAVE_UP = (
    "{title} TIDAK terkirim: tidak terhubung. Tekan lagi. / "
    "NOT sent: no connection. Press it again."
)
FEEDBACK_STILL_PENDING = (
    "Tunggu: {title} belum selesai. / Wait: {title} has no reply yet."
)
FEEDBACK_LOGIN_OFFLINE = (
    "Offline: masuk butuh server antrean. / Not connected: logging in needs the server."
)
FEEDBACK_NO_TICKET = "Tidak ada nomor dipanggil. / No ticket is called."
FEEDBACK_NOTHING_TO_CHOOSE = "Tidak ada pilihan. / Nothing to choose from."

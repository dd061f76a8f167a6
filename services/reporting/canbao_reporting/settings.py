"""ReportingSettings: the platform's (`REPORTING_DATABASE_URL` …), plus the font its PDFs embed."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from canbao_platform.settings import LOCAL_POSTGRES, ServiceSettings


class ReportingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REPORTING_", extra="ignore")

    database_url: str = f"{LOCAL_POSTGRES}/reporting"
    cjk_font: str = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
    """REPORTING_CJK_FONT: the TrueType font (or collection, subfont 0) the quarterly table's PDF
    embeds (exports.py); Debian's fonts-wqy-zenhei by default."""

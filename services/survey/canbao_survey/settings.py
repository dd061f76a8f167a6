"""SurveySettings: the platform's, plus the key that protects collected values at rest
(architecture.md: survey keeps personal data "encrypted the same way as identity"):
`SURVEY_DATA_KEY`, `SURVEY_DATA_KEY_ID`, `SURVEY_RETIRED_DATA_KEYS`
(canbao_platform.settings.DataKeySettings).
"""

from __future__ import annotations

import base64
from typing import ClassVar, Final

from pydantic_settings import SettingsConfigDict

from canbao_platform.settings import LOCAL_POSTGRES, DataKeySettings, ServiceSettings

# Public, in the repository: only good for data that is not real.
DEV_DATA_KEY: Final = base64.b64encode(b"canbao-dev-survey-key-not-secret").decode()
DEV_DATA_KEY_ID: Final = "dev-1"


class SurveySettings(DataKeySettings, ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SURVEY_", extra="ignore")
    development_data_key: ClassVar[str] = DEV_DATA_KEY
    development_data_key_id: ClassVar[str] = DEV_DATA_KEY_ID

    database_url: str = f"{LOCAL_POSTGRES}/survey"
    cjk_font: str = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
    """SURVEY_CJK_FONT: the TrueType font (or collection, subfont 0) the printed documents embed
    (documents.py); Debian's fonts-wqy-zenhei by default."""
    # SURVEY_IDENTITY_URL: identity's internal API, from which a survey list streams the
    # division's household members (lists.py); the local stack serves identity on 8001.
    identity_url: str = "http://127.0.0.1:8001"
    # How long a signed registration form is kept, from the visit (社会保险业务档案规定: business
    # archives are kept for fixed terms or permanently by the provincial catalogue; 30 years is
    # our default for registration evidence, to be set by the province).
    signed_form_retention_years: int = 30

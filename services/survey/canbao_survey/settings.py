"""SurveySettings: the platform's, plus the key that protects collected values at rest
(architecture.md: survey keeps personal data "encrypted the same way as identity").

`SURVEY_DATA_KEY` is 32 bytes in base64 (AES-256-GCM), `SURVEY_DATA_KEY_ID` names it (stored
beside every ciphertext, so a new key can take over while old rows stay readable under
`SURVEY_RETIRED_DATA_KEYS`, `id:base64,id:base64` as identity's). Without them the public
development key serves development and test only; production refuses to start.
"""

from __future__ import annotations

import base64
from typing import Final, Self

from pydantic import model_validator
from pydantic_settings import SettingsConfigDict

from canbao_platform.sealing import Sealer, retired_keys
from canbao_platform.settings import LOCAL_POSTGRES, ServiceSettings

# Public, in the repository: only good for data that is not real.
DEV_DATA_KEY: Final = base64.b64encode(b"canbao-dev-survey-key-not-secret").decode()
DEV_DATA_KEY_ID: Final = "dev-1"
KEY_BYTES: Final = 32


class SurveySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SURVEY_", extra="ignore")

    database_url: str = f"{LOCAL_POSTGRES}/survey"
    data_key: str | None = None
    data_key_id: str | None = None
    retired_data_keys: str = ""
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

    @model_validator(mode="after")
    def _keys_for_the_environment(self) -> Self:
        if self.data_key is None or self.data_key_id is None:
            if self.environment == "production":
                missing = [name for name, value in (("SURVEY_DATA_KEY", self.data_key),
                           ("SURVEY_DATA_KEY_ID", self.data_key_id)) if value is None]  # fmt: skip
                raise ValueError(f"{' and '.join(missing)} must be set in production")
            self.data_key, self.data_key_id = DEV_DATA_KEY, DEV_DATA_KEY_ID
        if self.environment == "production" and self.data_key == DEV_DATA_KEY:
            raise ValueError("SURVEY_DATA_KEY is the public development key: refused in production")
        for key_id, key in self.data_keys().items():
            if len(key) != KEY_BYTES:
                raise ValueError(f"the survey data key {key_id!r} must be 32 bytes, base64-encoded")
        return self

    def sealer(self) -> Sealer:
        """What seals new collections (the current key) and opens old ones (any of the keys)."""
        assert self.data_key_id is not None  # set by the validator
        return Sealer(self.data_key_id, self.data_keys())

    def data_keys(self) -> dict[str, bytes]:
        """Key id → AES key: the retired ones (for reading old rows) and the current one."""
        keys = retired_keys("SURVEY_RETIRED_DATA_KEYS", self.retired_data_keys)
        assert self.data_key is not None and self.data_key_id is not None
        try:
            keys[self.data_key_id] = base64.b64decode(self.data_key, validate=True)
        except ValueError:
            raise ValueError("SURVEY_DATA_KEY is not valid base64") from None
        return keys

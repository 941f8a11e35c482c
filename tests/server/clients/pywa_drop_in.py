"""A sender's existing pywa code, pointed at wagate: only the base URL differs from Meta's.

Run by the server test `drop_in_client` with the settings in its environment; prints one JSON
object of what each call gave, and exits non-zero if a call that should work raised.
"""

import json
import os
import sys

import httpx
from pywa import WhatsApp
from pywa.errors import ReEngagementMessage
from pywa.types import Button
from pywa.types.templates import (
    BodyText,
    Template,
    TemplateCategory,
    TemplateLanguage,
)

WAGATE = os.environ["WAGATE_URL"]
PERSON = os.environ["PERSON"]
STRANGER = os.environ["STRANGER"]
INBOUND = os.environ["INBOUND_WAMID"]

session = httpx.Client(timeout=30)
wa = WhatsApp(
    phone_id=os.environ["PHONE_ID"],
    token=os.environ["TOKEN"],
    waba_id=os.environ["WABA_ID"],
    session=session,
)
# The one change from code written for Meta: the base URL (pywa takes no parameter for it; it
# is the httpx client's, which pywa set to https://graph.facebook.com/v{version}).
session.base_url = str(session.base_url).replace("https://graph.facebook.com", WAGATE)

done = {}

done["text"] = wa.send_message(to=PERSON, text="Your order shipped").id
done["template"] = wa.send_template(
    to=PERSON,
    name="order_update",
    language=TemplateLanguage.ENGLISH_US,
    params=[BodyText.params("Ana")],
).id
image = bytes(range(256)) * 64
media = wa.upload_media(media=image, mime_type="image/png", filename="receipt.png")
done["uploaded_media_id"] = media.id
done["image"] = wa.send_image(to=PERSON, image=media.id, caption="Receipt").id
done["interactive"] = wa.send_message(
    to=PERSON,
    text="Keep your 9am slot?",
    buttons=[Button(title="Yes", callback_data="yes"), Button(title="No", callback_data="no")],
).id
done["read"] = bool(wa.mark_message_as_read(message_id=INBOUND))
done["typing"] = bool(wa.indicate_typing(message_id=INBOUND))
url = wa.get_media_url(media.id)
done["media_url"] = url.url
done["media_mime_type"] = url.mime_type
done["downloaded_matches"] = wa.get_media_bytes(url.url) == image
done["templates"] = [t.name for t in wa.get_templates()]
created = wa.create_template(
    template=Template(
        name="pickup_ready",
        category=TemplateCategory.UTILITY,
        language=TemplateLanguage.ENGLISH_US,
        components=[BodyText("Hi {{1}}, your parcel is ready.", "Ana")],
    )
)
done["created_template"] = {"id": created.id, "status": str(created.status)}
number = wa.get_business_phone_number()
done["phone_number"] = {
    "id": number.id,
    "display_phone_number": number.display_phone_number,
    "quality_rating": str(number.quality_rating),
}
try:
    wa.send_message(to=STRANGER, text="Hello out of the blue")
    done["outside_window"] = "sent"
except ReEngagementMessage as error:
    done["outside_window"] = f"ReEngagementMessage {error.code}"

print(json.dumps(done))
sys.stdout.flush()

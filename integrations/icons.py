"""An app's icon: a vendored brand logo, a file under static/, an https link, an uploaded
PNG or SVG (sanitised), or, as a last resort, a monogram distinct per app.

``app_icon`` is the one answer the modal and the API use. ``icon_upload_clean`` is the only way
an uploaded file becomes an icon: PNG is checked by its header, SVG is parsed and rebuilt from
an allow-list of shapes and attributes (no script, no event handler, no external reference).
"""

from __future__ import annotations

import hashlib
import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache

from django.contrib.staticfiles import finders
from django.core.exceptions import ValidationError
from django.templatetags.static import static
from django.urls import reverse

SIMPLE_ICONS = "simple-icons:"
LOGO_DIR = "integrations/logos/"
STATIC_ICON = re.compile(r"^integrations/(?:icons|logos)/[a-z0-9][a-z0-9._-]*\.(?:svg|png)$")
SIMPLE_ICON = re.compile(r"^simple-icons:[a-z0-9]+$")
MAX_UPLOAD_BYTES = 100 * 1024
MAX_PNG_SIDE = 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SVG_TYPE = "image/svg+xml"
PNG_TYPE = "image/png"

# Monogram backgrounds: each carries white text at WCAG AA (contrast 4.5:1 or more).
MONOGRAM_COLOURS = (
    "#1d4ed8",
    "#0f766e",
    "#7c3aed",
    "#b91c1c",
    "#a16207",
    "#15803d",
    "#be185d",
    "#4338ca",
    "#0e7490",
    "#c2410c",
    "#6d28d9",
    "#334155",
)


@dataclass(frozen=True)
class AppIcon:
    """An image URL, or (``url`` empty) a monogram: letters on a colour."""

    url: str = ""
    letters: str = ""
    background: str = ""
    # A bare brand glyph (simple-icons), drawn on a light tile so it reads in dark mode too.
    glyph: bool = False

    @property
    def is_monogram(self) -> bool:
        return not self.url


def icon_path(icon: str) -> str:
    """The static path an ``icon`` value names ("" when it names none)."""
    if SIMPLE_ICON.match(icon):
        return f"{LOGO_DIR}{icon[len(SIMPLE_ICONS) :]}.svg"
    if STATIC_ICON.match(icon):
        return icon
    return ""


def validate_icon(icon: str) -> None:
    """An app's ``icon``: empty, a vendored logo, a static file of ours, or an https URL."""
    if not icon or icon.startswith("https://"):
        return
    path = icon_path(icon)
    if not path:
        raise ValidationError(
            "Give an https:// URL, simple-icons:<slug> or a file under "
            "integrations/icons/ (or leave it empty and upload an icon)."
        )
    if not finders.find(path):
        raise ValidationError(f"There is no static file {path}; run scripts/vendor-logos?")


def monogram(name: str, key: str) -> AppIcon:
    """Up to two letters of the name on a colour chosen by ``key`` (distinct per app)."""
    words = re.findall(r"[^\W_]+", name)
    if len(words) >= 2:
        letters = words[0][0] + words[1][0]
    else:
        letters = (words[0][:2] if words else "?").capitalize()
    digest = hashlib.sha256(key.encode()).digest()
    return AppIcon(
        letters=letters.upper() if len(words) >= 2 else letters,
        background=MONOGRAM_COLOURS[digest[0] % len(MONOGRAM_COLOURS)],
    )


@lru_cache(maxsize=2048)
def _static_url(path: str) -> str:
    return static(path)


def app_icon(app) -> AppIcon:
    """What to show for ``app``: its uploaded icon, its link, its static logo, else a monogram."""
    if getattr(app, "icon_digest", ""):
        extension = "svg" if app.icon_file_type == SVG_TYPE else "png"
        return AppIcon(
            url=reverse(
                "connect:app_icon",
                kwargs={"app_id": app.pk, "digest": app.icon_digest, "extension": extension},
            )
        )
    icon = app.icon or ""
    if icon.startswith("https://"):
        return AppIcon(url=icon)
    if path := icon_path(icon):
        return AppIcon(url=_static_url(path), glyph=path.startswith(LOGO_DIR))
    return monogram(app.name, f"{app.tenant_id}:{app.slug}")


# Uploads.

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
SVG_ELEMENTS = {
    "svg",
    "g",
    "path",
    "circle",
    "ellipse",
    "rect",
    "line",
    "polyline",
    "polygon",
    "title",
    "desc",
    "defs",
    "linearGradient",
    "radialGradient",
    "stop",
    "clipPath",
    "mask",
    "use",
    "symbol",
}
SVG_ATTRIBUTES = {
    "id",
    "viewBox",
    "width",
    "height",
    "x",
    "y",
    "x1",
    "x2",
    "y1",
    "y2",
    "cx",
    "cy",
    "r",
    "rx",
    "ry",
    "d",
    "points",
    "fill",
    "fill-rule",
    "fill-opacity",
    "stroke",
    "stroke-width",
    "stroke-linecap",
    "stroke-linejoin",
    "stroke-opacity",
    "stroke-miterlimit",
    "stroke-dasharray",
    "opacity",
    "transform",
    "clip-path",
    "clip-rule",
    "mask",
    "offset",
    "stop-color",
    "stop-opacity",
    "gradientUnits",
    "gradientTransform",
    "preserveAspectRatio",
    "href",
}
# A paint or reference may only point inside the document: url(#id) or #id.
LOCAL_REFERENCE = re.compile(r"^#[A-Za-z][\w.-]*$")
URL_VALUE = re.compile(r"url\(\s*['\"]?([^)'\"]*)['\"]?\s*\)", re.I)


def _local_name(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return "", tag


def _clean_element(source: ET.Element) -> ET.Element | None:
    namespace, name = _local_name(source.tag)
    if namespace != SVG_NS or name not in SVG_ELEMENTS:
        return None
    clean = ET.Element(name)
    for key, value in source.attrib.items():
        attr_namespace, attr = _local_name(key)
        if attr_namespace not in ("", XLINK_NS) or attr not in SVG_ATTRIBUTES:
            continue
        if attr_namespace == XLINK_NS and attr != "href":
            continue
        if attr == "href" and not LOCAL_REFERENCE.match(value):
            continue
        if any(not LOCAL_REFERENCE.match(ref) for ref in URL_VALUE.findall(value)):
            continue
        clean.set(attr, value[:5000])
    if name in ("title", "desc") and source.text:
        clean.text = source.text[:200]
    for child in source:
        cleaned = _clean_element(child)
        if cleaned is not None:
            clean.append(cleaned)
    return clean


def svg_sanitise(data: bytes) -> bytes:
    """The SVG rebuilt from allowed elements and attributes only; ValidationError if unusable."""
    text = data.decode("utf-8", errors="strict") if data else ""
    # No document type: no entities (expansion bombs, external files) reach the parser.
    if re.search(r"<!(?:DOCTYPE|ENTITY)", text, re.I):
        raise ValidationError("The SVG may not declare a DOCTYPE or entities.")
    try:
        # Safe without defusedxml: a DOCTYPE (so any entity) was refused above, and expat
        # never fetches external resources.
        root = ET.fromstring(text)  # noqa: S314
    except ET.ParseError as exc:
        raise ValidationError(f"That is not a readable SVG file ({exc}).") from exc
    if _local_name(root.tag) != (SVG_NS, "svg"):
        raise ValidationError("That is not an SVG image (its root is not <svg>).")
    clean = _clean_element(root)
    clean.set("xmlns", SVG_NS)
    return ET.tostring(clean, encoding="utf-8", xml_declaration=False)


def png_check(data: bytes) -> bytes:
    if not data.startswith(PNG_MAGIC) or data[12:16] != b"IHDR" or len(data) < 24:
        raise ValidationError("That is not a PNG image.")
    width, height = struct.unpack(">II", data[16:24])
    if not (0 < width <= MAX_PNG_SIDE and 0 < height <= MAX_PNG_SIDE):
        raise ValidationError(f"The image may be at most {MAX_PNG_SIDE} by {MAX_PNG_SIDE} pixels.")
    return data


def icon_upload_clean(data: bytes) -> tuple[bytes, str]:
    """An uploaded icon, checked (PNG) or sanitised (SVG), with its content type."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValidationError(f"The icon may be at most {MAX_UPLOAD_BYTES // 1024} KB.")
    if data.startswith(PNG_MAGIC):
        return png_check(data), PNG_TYPE
    try:
        return svg_sanitise(data), SVG_TYPE
    except UnicodeDecodeError as exc:
        raise ValidationError("Upload a PNG or an SVG image.") from exc


def icon_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]

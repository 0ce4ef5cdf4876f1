"""Reading request bodies (`imagine_billing.adapters._body`), without httpx."""

from __future__ import annotations

import json

from imagine_billing.adapters._body import field_values, fingerprint

MULTIPART = "multipart/form-data; boundary=XyZ"


def multipart(*fields: tuple[str, str], boundary: str = "XyZ", eol: str = "\r\n") -> bytes:
    """A multipart/form-data body of text fields."""
    lines = []
    for name, value in fields:
        lines += [f"--{boundary}", f'Content-Disposition: form-data; name="{name}"', "", value]
    lines.append(f"--{boundary}--")
    return (eol.join(lines) + eol).encode()


class TestFieldValues:
    def test_multipart_crlf(self) -> None:
        """A multipart field is read, with CRLF line breaks."""
        body = multipart(("prompt", "a cat"), ("style", "flux-dev"))
        assert ["flux-dev"] == field_values(MULTIPART, body, "style")

    def test_multipart_lf_only(self) -> None:
        """LF-only line breaks are read too."""
        body = multipart(("style", "anime"), eol="\n")
        assert ["anime"] == field_values(MULTIPART, body, "style")

    def test_repeated_field_keeps_every_value_in_order(self) -> None:
        """A field given twice gives both values, in their order."""
        body = multipart(("style", "anime"), ("style", "flux-dev"))
        assert ["anime", "flux-dev"] == field_values(MULTIPART, body, "style")

    def test_delimiter_only_at_the_start_of_a_line(self) -> None:
        """``--boundary`` inside a line is content, not a delimiter."""
        body = multipart(("prompt", "see --XyZ here"), ("style", "anime"))
        assert ["see --XyZ here"] == field_values(MULTIPART, body, "prompt")

    def test_urlencoded(self) -> None:
        """A urlencoded form's field is read, stripped."""
        content_type = "application/x-www-form-urlencoded"
        assert ["flux-dev"] == field_values(content_type, b"prompt=x&style=+flux-dev+", "style")

    def test_json(self) -> None:
        """A JSON object's string field is read; other shapes give nothing."""
        assert ["anime"] == field_values("application/json", b'{"style": "anime"}', "style")
        assert [] == field_values("application/json", b'{"style": 3}', "style")
        assert [] == field_values("application/json", b"[1, 2", "style")

    def test_other_content_type(self) -> None:
        """A body of another type has no fields."""
        assert [] == field_values("text/plain", b"style=anime", "style")


class TestFingerprint:
    def test_boundary_does_not_matter(self) -> None:
        """A new multipart boundary is the same request."""
        one = multipart(("prompt", "a cat"), ("style", "anime"), boundary="one")
        two = multipart(("prompt", "a cat"), ("style", "anime"), boundary="two")
        assert fingerprint("text-to-image", "anime", b"", "multipart/form-data; boundary=one",
                           one) == fingerprint("text-to-image", "anime", b"",
                                               "multipart/form-data; boundary=two", two)

    def test_field_order_does_not_matter(self) -> None:
        """Differently named fields in another order are the same request."""
        one = multipart(("prompt", "a cat"), ("style", "anime"))
        two = multipart(("style", "anime"), ("prompt", "a cat"))
        assert (fingerprint("text-to-image", "anime", b"", MULTIPART, one)
                == fingerprint("text-to-image", "anime", b"", MULTIPART, two))

    def test_json_key_order_does_not_matter(self) -> None:
        """A JSON body is hashed in canonical form."""
        one = json.dumps({"prompt": "a cat", "style": "anime"}).encode()
        two = json.dumps({"style": "anime", "prompt": "a cat"}, indent=2).encode()
        assert (fingerprint("text-to-image", "anime", b"", "application/json", one)
                == fingerprint("text-to-image", "anime", b"", "application/json", two))

    def test_content_operation_style_and_query_matter(self) -> None:
        """Another prompt, operation, style or query is another request."""
        body = multipart(("prompt", "a cat"))
        base = fingerprint("text-to-image", "anime", b"", MULTIPART, body)
        assert base != fingerprint("text-to-image", "anime", b"", MULTIPART,
                                   multipart(("prompt", "a dog")))
        assert base != fingerprint("upscale", "anime", b"", MULTIPART, body)
        assert base != fingerprint("text-to-image", "flux-dev", b"", MULTIPART, body)
        assert base != fingerprint("text-to-image", "anime", b"seed=1", MULTIPART, body)

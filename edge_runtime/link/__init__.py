"""edge-link: the serial protocol between the gateway and small RT-Thread nodes.

The specification is ``native/rtlink/PROTOCOL.md``; the portable C client is ``native/rtlink/``.
:mod:`.protocol` encodes and decodes packets and frames, :mod:`.endpoint` adds acknowledgements,
retransmission and duplicate suppression over any byte stream.
"""

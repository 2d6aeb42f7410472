namespace ReaperProxy.Framing;

/// <summary>
/// Walks one direction of a WebSocket byte stream frame by frame without buffering payloads. Data-frame
/// payloads are only counted; headers and whole control frames (≤ 139 bytes) must be contiguous in the
/// span handed to <see cref="Scan"/> — when a span ends inside one, the caller holds those bytes and
/// hands them back, in front of the next bytes, at the next call (<see cref="ScanStop.Held"/>).
/// </summary>
internal struct FrameScanner
{
    private readonly MaskRule _masking;
    private long _payloadRemaining;
    private bool _messageOpen;

    /// <summary>A scanner for one direction: <paramref name="masking"/> says which masking its frames must have.</summary>
    public FrameScanner(MaskRule masking) => _masking = masking;

    /// <summary>Whether the stream is between frames (not inside a data frame's payload).</summary>
    public readonly bool AtBoundary => _payloadRemaining == 0;

    /// <summary>Payload bytes of the current data frame still to come.</summary>
    public readonly long PayloadRemaining => _payloadRemaining;

    /// <summary>
    /// Scans <paramref name="data"/> from <paramref name="start"/>. The bytes
    /// <c>[start, start + run)</c> may be forwarded as they are; what follows them is said by the result.
    /// </summary>
    /// <param name="data">The bytes, starting at a frame boundary or inside a data payload.</param>
    /// <param name="start">Where to start.</param>
    /// <param name="stopAtBoundary">Stop at the first frame boundary (to inject a control frame there).</param>
    /// <param name="run">
    /// How many bytes from <paramref name="start"/> may be forwarded. They are all data-frame bytes
    /// (headers and payload; control frames are handed over whole, as <see cref="ScanStop.Control"/>),
    /// so a run above zero is data for the idle timeout: a long frame still streaming is not idle.
    /// </param>
    /// <param name="control">For <see cref="ScanStop.Control"/>: the control frame at <c>start + run</c>.</param>
    /// <param name="error">For <see cref="ScanStop.Error"/>: what is wrong with the frame at <c>start + run</c>.</param>
    public ScanStop Scan(ReadOnlySpan<byte> data, int start, bool stopAtBoundary, out int run, out FrameHeader control, out FrameError error)
    {
        control = default;
        error = FrameError.None;
        var pos = start;
        while (true)
        {
            if (_payloadRemaining > 0)
            {
                var available = data.Length - pos;
                if (available == 0)
                {
                    run = pos - start;
                    return ScanStop.End;
                }

                var take = (int)Math.Min(_payloadRemaining, available);
                pos += take;
                _payloadRemaining -= take;
                continue;
            }

            if (stopAtBoundary)
            {
                run = pos - start;
                return ScanStop.Boundary;
            }

            if (pos == data.Length)
            {
                run = pos - start;
                return ScanStop.End;
            }

            var status = FrameHeader.TryParse(data[pos..], out var header, out error);
            if (status == HeaderStatus.Invalid)
            {
                run = pos - start;
                return ScanStop.Error;
            }

            if (status == HeaderStatus.NeedMore)
            {
                run = pos - start;
                return ScanStop.Held;
            }

            // §5.1: the proxy is the server of the client's leg and the client of the backend's; forwarding a
            // frame masked the wrong way would put it on the other leg as the proxy's own violation.
            if (_masking != MaskRule.Any && header.Masked != (_masking == MaskRule.Masked))
            {
                error = header.Masked ? FrameError.MaskedServerFrame : FrameError.UnmaskedClientFrame;
                run = pos - start;
                return ScanStop.Error;
            }

            if (header.IsControl)
            {
                if (data.Length - pos < header.FrameLength)
                {
                    run = pos - start;
                    return ScanStop.Held;
                }

                run = pos - start;
                if (header.Opcode == WebSocketOpcode.Close)
                {
                    error = CloseCodes.Validate(header, data.Slice(pos, (int)header.FrameLength));
                    if (error != FrameError.None)
                    {
                        return ScanStop.Error;
                    }
                }

                control = header;
                return ScanStop.Control;
            }

            // §5.4: a message is one unfragmented frame, or a first frame with FIN clear followed by
            // continuation frames up to one with FIN set; control frames may sit between them.
            if (header.Opcode == WebSocketOpcode.Continuation ? !_messageOpen : _messageOpen)
            {
                error = _messageOpen ? FrameError.ExpectedContinuation : FrameError.UnexpectedContinuation;
                run = pos - start;
                return ScanStop.Error;
            }

            _messageOpen = !header.Fin;
            pos += header.HeaderLength;
            _payloadRemaining = header.PayloadLength;

            // A header alone at the end still counts as forwarded: the payload streams after it.
        }
    }
}

/// <summary>Why <see cref="FrameScanner.Scan"/> stopped.</summary>
internal enum ScanStop
{
    /// <summary>Every byte was consumed.</summary>
    End,

    /// <summary>The data ends inside a header or a control frame: hold the rest and resend it.</summary>
    Held,

    /// <summary>A complete control frame waits for the caller's decision.</summary>
    Control,

    /// <summary>At a frame boundary, as asked.</summary>
    Boundary,

    /// <summary>A frame that breaks RFC 6455; nothing from it on was forwarded.</summary>
    Error,
}

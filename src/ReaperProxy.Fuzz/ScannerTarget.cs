using ReaperProxy.Framing;

namespace ReaperProxy.Fuzz;

/// <summary>
/// Fuzz target 1: <see cref="FrameScanner"/>. The input is a read pattern and a byte stream:
/// <c>[n] [boundary bits] [n read sizes] [stream...]</c>. The stream is scanned once whole and once cut
/// into reads of the given sizes (held bytes handed back in front of the next read, as the relay does),
/// asking for frame boundaries where the bits say so. Properties, each a <see cref="PropertyViolation"/>:
/// both passes report the same control frames, errors and held tail at the same offsets; they agree with
/// <see cref="WireModel"/>; a boundary is reported only between frames; a forwarded run never holds a
/// control frame's bytes, an invalid frame's bytes, or anything after them.
/// </summary>
internal static class ScannerTarget
{
    public static void Run(ReadOnlySpan<byte> data)
    {
        var input = new FuzzInput(data);
        var splits = input.NextByte() & 0x0F;
        var boundaryBits = input.NextByte();
        Span<int> sizes = stackalloc int[16];
        for (var i = 0; i < splits; i++)
        {
            // 1..256, and a few long reads: most frames in the corpus are short.
            var b = input.NextByte();
            sizes[i] = b >= 0xF0 ? (b - 0xEF) * 1024 : b + 1;
        }

        var stream = input.Rest();
        var model = WireModel.Read(stream, stopAfterClose: false);
        var whole = Scan(stream, [stream.Length], 0, model);
        var split = Scan(stream, splits == 0 ? [stream.Length] : sizes[..splits], boundaryBits, model);
        PropertyViolation.Check(whole.Count == split.Count, $"scanner: {whole.Count} events whole, {split.Count} split ({Describe(whole)} / {Describe(split)})");
        for (var i = 0; i < whole.Count; i++)
        {
            PropertyViolation.Check(whole[i] == split[i], $"scanner: event {i} differs: {whole[i]} whole, {split[i]} split");
        }

        CheckAgainstModel(whole, model, stream.Length);
    }

    private static List<ScanEvent> Scan(ReadOnlySpan<byte> stream, ReadOnlySpan<int> sizes, byte boundaryBits, WireModel model)
    {
        var events = new List<ScanEvent>();
        var scanner = new FrameScanner();
        var buffer = new byte[stream.Length + FrameHeader.MaxControlFrame];
        var held = 0;
        var consumed = 0;
        var call = 0;
        for (var read = 0; consumed < stream.Length || read == 0; read++)
        {
            var size = Math.Min(sizes[read % sizes.Length], stream.Length - consumed);
            var baseOffset = consumed - held;
            stream.Slice(consumed, size).CopyTo(buffer.AsSpan(held));
            consumed += size;
            var span = buffer.AsSpan(0, held + size);
            var pos = 0;
            var injected = false;
            held = 0;
            while (true)
            {
                // Right after a boundary stop the relay has written its frame and scans on without stopping.
                var stopAtBoundary = !injected && ((boundaryBits >> (call++ & 7)) & 1) != 0;
                injected = false;
                var stop = scanner.Scan(span, pos, stopAtBoundary, out var run, out var control, out var error);
                PropertyViolation.Check(run >= 0 && pos + run <= span.Length, $"scanner: run {run} from {pos} leaves the {span.Length}-byte span");
                CheckRun(model, baseOffset + pos, baseOffset + pos + run);
                pos += run;
                switch (stop)
                {
                    case ScanStop.End:
                        PropertyViolation.Check(pos == span.Length, $"scanner: End at {baseOffset + pos} before the span's end {baseOffset + span.Length}");
                        break;
                    case ScanStop.Held:
                        held = span.Length - pos;
                        PropertyViolation.Check(held is > 0 and <= FrameHeader.MaxControlFrame, $"scanner: {held} bytes held at {baseOffset + pos}");
                        span[pos..].CopyTo(buffer);
                        break;
                    case ScanStop.Control:
                        PropertyViolation.Check(control.IsControl && control.FrameLength <= span.Length - pos, $"scanner: control {control} at {baseOffset + pos} is not whole in the span");
                        events.Add(new ScanEvent(ScanStop.Control, baseOffset + pos, control.Opcode, (int)control.FrameLength));
                        pos += (int)control.FrameLength;
                        continue;
                    case ScanStop.Boundary:
                        PropertyViolation.Check(stopAtBoundary && scanner.AtBoundary, $"scanner: Boundary at {baseOffset + pos} not asked for or not at a boundary");
                        CheckBoundary(model, baseOffset + pos);
                        injected = true;
                        continue;
                    case ScanStop.Error:
                        events.Add(new ScanEvent(ScanStop.Error, baseOffset + pos, (byte)error, 0));
                        return events;
                    default:
                        throw new PropertyViolation($"scanner: unknown stop {stop}");
                }

                break;
            }

            if (consumed == stream.Length)
            {
                events.Add(new ScanEvent(held > 0 ? ScanStop.Held : ScanStop.End, stream.Length - held, 0, held));
                break;
            }
        }

        return events;
    }

    // A forwarded run is data-frame bytes only: never inside a control frame, an invalid frame, or a held tail.
    private static void CheckRun(WireModel model, int from, int to)
    {
        if (to <= from)
        {
            return;
        }

        PropertyViolation.Check(model.ErrorOffset is not { } bad || to <= bad, $"scanner: run [{from}, {to}) reaches the invalid frame at {model.ErrorOffset}");
        foreach (var frame in model.Frames)
        {
            if (frame.End <= from || frame.Offset >= to)
            {
                continue;
            }

            PropertyViolation.Check(!frame.IsControl && frame.HeaderLength > 0, $"scanner: run [{from}, {to}) covers bytes of {frame}");
        }
    }

    private static void CheckBoundary(WireModel model, int offset)
    {
        foreach (var frame in model.Frames)
        {
            if (frame.Offset == offset || (frame.Complete && frame.End == offset))
            {
                return;
            }
        }

        PropertyViolation.Check(offset == 0 && model.Frames.Count == 0, $"scanner: Boundary at {offset} is not between frames");
    }

    private static void CheckAgainstModel(List<ScanEvent> events, WireModel model, int streamLength)
    {
        var expected = new List<ScanEvent>();
        foreach (var frame in model.Frames)
        {
            if (frame.IsControl && frame.Complete)
            {
                expected.Add(new ScanEvent(ScanStop.Control, frame.Offset, frame.Opcode, frame.Length));
            }
        }

        if (model.ErrorOffset is { } bad)
        {
            expected.Add(new ScanEvent(ScanStop.Error, bad, (byte)ErrorFor(model.Error!), 0));
        }
        else if (model.Frames.Count > 0 && model.Frames[^1] is { Complete: false } last && (last.HeaderLength == 0 || last.IsControl))
        {
            expected.Add(new ScanEvent(ScanStop.Held, last.Offset, 0, last.Length));
        }
        else
        {
            expected.Add(new ScanEvent(ScanStop.End, streamLength, 0, 0));
        }

        PropertyViolation.Check(expected.SequenceEqual(events), $"scanner: events {Describe(events)}, the model says {Describe(expected)} ({model.Error})");
    }

    private static FrameError ErrorFor(string error) => error switch
    {
        "reserved opcode" => FrameError.ReservedOpcode,
        "fragmented control frame" => FrameError.FragmentedControlFrame,
        "control frame over 125 bytes" => FrameError.ControlFrameTooLong,
        "64-bit length with the top bit set" => FrameError.LengthTopBitSet,
        "continuation without a message" => FrameError.UnexpectedContinuation,
        "new message inside an open one" => FrameError.ExpectedContinuation,
        "unmasked client frame" => FrameError.UnmaskedClientFrame,
        "masked server frame" => FrameError.MaskedServerFrame,
        "close with a 1-byte payload" => FrameError.CloseOneBytePayload,
        "close code no endpoint may send" => FrameError.InvalidCloseCode,
        "close reason not UTF-8" => FrameError.InvalidCloseReason,
        _ => throw new ArgumentOutOfRangeException(nameof(error), error, "not a model error"),
    };

    private static string Describe(List<ScanEvent> events) => string.Join(", ", events);

    /// <summary>What the scanner reported at an offset of the whole stream (Value: opcode or error; Length: frame or held bytes).</summary>
    private readonly record struct ScanEvent(ScanStop Stop, int Offset, byte Value, int Length);
}

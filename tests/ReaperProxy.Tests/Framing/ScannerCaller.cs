using System.Buffers;
using ReaperProxy.Framing;

namespace ReaperProxy.Tests.Framing;

/// <summary>
/// Drives a <see cref="FrameScanner"/> the way its contract asks a caller to: forward each run, hold
/// trailing bytes the scanner could not judge and put them in front of the next chunk, forward each
/// control frame. Optionally injects a marker frame at a boundary whenever <see cref="RequestInjection"/>
/// was called, as the relay does with its pings.
/// </summary>
/// <remarks>
/// Two ways to look at the result: collect the forwarded bytes (<see cref="Output"/>), or, for tests that
/// run thousands of scans over a large stream, compare them as they come with the expected input
/// (<see cref="Verifying"/>), which records where markers were injected instead of copying anything.
/// </remarks>
internal sealed class ScannerCaller
{
    private readonly ArrayBufferWriter<byte>? _output;
    private readonly byte[]? _expected;
    private readonly byte[]? _marker;
    private readonly Func<bool>? _injectBeforeScan;
    private FrameScanner _scanner;
    private byte[] _held = [];
    private bool _wantInjection;
    private int _cursor;

    /// <param name="marker">The frame to inject, or null for a caller that never injects.</param>
    /// <param name="injectBeforeScan">Asked before every scan call whether to request an injection then.</param>
    /// <param name="masking">The masking the scanned direction's frames must have.</param>
    public ScannerCaller(byte[]? marker = null, Func<bool>? injectBeforeScan = null, MaskRule masking = MaskRule.Any)
    {
        _scanner = new FrameScanner(masking);
        _output = new ArrayBufferWriter<byte>();
        _marker = marker;
        _injectBeforeScan = injectBeforeScan;
    }

    private ScannerCaller(byte[] expected, byte[]? marker)
    {
        _expected = expected;
        _marker = marker;
    }

    /// <summary>A caller that checks each forwarded byte against <paramref name="expected"/> (the input, without markers).</summary>
    public static ScannerCaller Verifying(byte[] expected, byte[]? marker = null) => new(expected, marker);

    /// <summary>What the caller forwarded, in order (runs, control frames and injected markers).</summary>
    public ReadOnlySpan<byte> Output => _output is null ? throw new InvalidOperationException("a verifying caller keeps no output") : _output.WrittenSpan;

    /// <summary>Input bytes forwarded so far (markers not counted).</summary>
    public int Forwarded => _cursor;

    /// <summary>For a verifying caller: the first offset where the forwarded bytes differed from the input.</summary>
    public int? MismatchAt { get; private set; }

    /// <summary>Offsets into the input (input bytes forwarded before it) at which each marker was injected.</summary>
    public List<int> InjectedAt { get; } = [];

    /// <summary>The control frames the scanner stopped at, as headers.</summary>
    public List<FrameHeader> Controls { get; } = [];

    /// <summary>How many markers were injected.</summary>
    public int Injected => InjectedAt.Count;

    /// <summary>Bytes held back, waiting for the next chunk.</summary>
    public int HeldCount => _held.Length;

    public bool AtBoundary => _scanner.AtBoundary;

    /// <summary>The first error the scanner reported, if any; nothing is forwarded after it.</summary>
    public FrameError? Error { get; private set; }

    /// <summary>Where the error was, counted in input bytes forwarded before it.</summary>
    public int ErrorAt { get; private set; }

    public void RequestInjection() => _wantInjection = true;

    public void Feed(ReadOnlySpan<byte> chunk)
    {
        if (Error is not null)
        {
            return;
        }

        ReadOnlySpan<byte> data;
        if (_held.Length > 0)
        {
            // The contract: held bytes go back in front of the next bytes.
            var joined = new byte[_held.Length + chunk.Length];
            _held.CopyTo(joined, 0);
            chunk.CopyTo(joined.AsSpan(_held.Length));
            data = joined;
            _held = [];
        }
        else
        {
            data = chunk;
        }

        var pos = 0;
        while (true)
        {
            if (_injectBeforeScan?.Invoke() == true)
            {
                RequestInjection();
            }

            var stop = _scanner.Scan(data, pos, _wantInjection && _marker is not null, out var run, out var control, out var error);
            if (run < 0 || pos + run > data.Length)
            {
                throw new InvalidOperationException($"run {run} from {pos} leaves the {data.Length}-byte span");
            }

            Forward(data.Slice(pos, run));
            pos += run;
            switch (stop)
            {
                case ScanStop.End:
                    if (pos != data.Length)
                    {
                        throw new InvalidOperationException($"End at {pos} of {data.Length}");
                    }

                    InjectIfWanted();
                    return;

                case ScanStop.Held:
                    _held = data[pos..].ToArray();
                    if (_held.Length == 0 || _held.Length >= FrameHeader.MaxControlFrame)
                    {
                        throw new InvalidOperationException($"held {_held.Length} bytes; a held unit is 1..{FrameHeader.MaxControlFrame - 1}");
                    }

                    InjectIfWanted();
                    return;

                case ScanStop.Control:
                    Controls.Add(control);
                    Forward(data.Slice(pos, (int)control.FrameLength));
                    pos += (int)control.FrameLength;
                    break;

                case ScanStop.Boundary:
                    InjectIfWanted();
                    break;

                case ScanStop.Error:
                    Error = error;
                    ErrorAt = _cursor;
                    return;
            }
        }
    }

    private void Forward(ReadOnlySpan<byte> bytes)
    {
        if (_expected is not null && MismatchAt is null)
        {
            // A run cut straight from the input array is the right bytes exactly when it starts at the
            // cursor; only copies (held bytes joined to a chunk) need their content compared. This keeps
            // a verifying caller O(frames) per scan rather than O(bytes), so every split point of a
            // 64 KiB stream stays cheap.
            if (!bytes.Overlaps(_expected, out var offset) || offset != _cursor)
            {
                var expected = _expected.AsSpan(_cursor, Math.Min(bytes.Length, _expected.Length - _cursor));
                var common = bytes.CommonPrefixLength(expected);
                if (common < bytes.Length)
                {
                    MismatchAt = _cursor + common;
                }
            }
        }

        _output?.Write(bytes);
        _cursor += bytes.Length;
    }

    private void InjectIfWanted()
    {
        // Held bytes are not forwarded yet, so the output is between frames when the scanner is.
        if (_wantInjection && _marker is not null && _scanner.AtBoundary)
        {
            _output?.Write(_marker);
            InjectedAt.Add(_cursor);
            _wantInjection = false;
        }
    }
}

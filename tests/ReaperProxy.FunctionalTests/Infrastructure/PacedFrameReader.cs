using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>A steady reading rate: at most <see cref="ChunkBytes"/> every <see cref="Interval"/>.</summary>
public sealed record Pace(int ChunkBytes, TimeSpan Interval)
{
    /// <summary>1 KiB every 100 ms, about 10 KiB/s: a slow mobile link.</summary>
    public static readonly Pace TenKiBPerSecond = new(1024, TimeSpan.FromMilliseconds(100));

    /// <summary>2 KiB every 100 ms, about 20 KiB/s.</summary>
    public static readonly Pace TwentyKiBPerSecond = new(2048, TimeSpan.FromMilliseconds(100));

    public double BytesPerSecond => ChunkBytes / Interval.TotalSeconds;

    public override string ToString() => $"{BytesPerSecond / 1024:0.#} KiB/s ({ChunkBytes} B every {Interval.TotalMilliseconds:0} ms)";
}

/// <summary>Why <see cref="PacedFrameReader.ReadAsync"/> returned.</summary>
public enum PacedStop
{
    /// <summary>It read for the whole duration.</summary>
    DurationElapsed,

    /// <summary>It consumed the byte budget it was given (and then stopped reading).</summary>
    ByteLimit,

    /// <summary>The requested number of whole data messages arrived.</summary>
    Messages,

    /// <summary>A Close frame arrived (it was answered).</summary>
    CloseReceived,

    /// <summary>The peer ended the connection (FIN or reset).</summary>
    EndOfStream,
}

/// <summary>
/// A live but slow WebSocket reader over a raw socket: consumes the byte stream at a steady
/// <see cref="Pace"/> (paced on a <see cref="Stopwatch"/>, so the long-run rate holds whatever the delays
/// do), parses frames incrementally without buffering data payloads (a message of many MB is fine), and
/// answers every Ping it reads with a Pong carrying the same payload (masked when it is the client side,
/// as RFC 6455 §5.3 requires) and every Close with a Close. It models a peer on a slow link that is alive
/// and keeps consuming, however far behind it is.
/// </summary>
public sealed class PacedFrameReader
{
    private readonly Socket _socket;
    private readonly bool _maskOutgoing;
    private readonly IncrementalFrameParser _parser;
    private readonly List<RawFrame> _toAnswer = [];
    private readonly MemoryStream? _payload;
    private long _bytesConsumed;
    private long _lastProgress;
    private int _pingsAnswered;
    private RawFrame? _close;
    private volatile bool _endOfStream;
    private byte[] _leftover;

    /// <param name="socket">The connected socket, past the HTTP upgrade.</param>
    /// <param name="maskOutgoing">True for a client (its frames must be masked), false for a server.</param>
    /// <param name="leftover">Bytes already read past the upgrade's headers.</param>
    /// <param name="keepPayload">Keep the data payloads (for byte comparison) instead of only counting them.</param>
    public PacedFrameReader(Socket socket, bool maskOutgoing, ReadOnlySpan<byte> leftover = default, bool keepPayload = false)
    {
        _socket = socket;
        _maskOutgoing = maskOutgoing;
        _payload = keepPayload ? new MemoryStream() : null;
        _parser = new IncrementalFrameParser(keepPayload ? _payload : null);
        _leftover = leftover.ToArray();
        _lastProgress = Stopwatch.GetTimestamp();
    }

    /// <summary>Bytes consumed from the socket so far (headers and payloads).</summary>
    public long BytesConsumed => Interlocked.Read(ref _bytesConsumed);

    /// <summary>Data payload bytes read so far (text, binary, continuation).</summary>
    public long DataBytes => _parser.DataBytes;

    /// <summary>Whole data messages read so far.</summary>
    public int MessagesCompleted => _parser.MessagesCompleted;

    /// <summary>Pings read and answered with a Pong.</summary>
    public int PingsAnswered => Volatile.Read(ref _pingsAnswered);

    /// <summary>The Close frame that arrived, if any.</summary>
    public RawFrame? Close => Volatile.Read(ref _close);

    /// <summary>Whether the peer ended the connection.</summary>
    public bool EndOfStream => _endOfStream;

    /// <summary>The <see cref="Stopwatch"/> timestamp of the last read that returned bytes.</summary>
    public long LastProgressTimestamp => Interlocked.Read(ref _lastProgress);

    /// <summary>The data payloads read so far (only when constructed with keepPayload).</summary>
    public byte[] Payload() => _payload?.ToArray() ?? throw new InvalidOperationException("construct with keepPayload: true");

    /// <summary>
    /// Reads at <paramref name="pace"/> for at most <paramref name="duration"/>, stopping early at a Close,
    /// the end of the stream, after <paramref name="stopAfterBytes"/> bytes consumed in total, or once
    /// <paramref name="stopAfterMessages"/> whole data messages arrived.
    /// </summary>
    public async Task<PacedStop> ReadAsync(Pace pace, TimeSpan duration, long? stopAfterBytes = null, int? stopAfterMessages = null, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        var startBytes = BytesConsumed;
        var buffer = new byte[pace.ChunkBytes];
        if (_leftover.Length > 0)
        {
            var leftover = _leftover;
            _leftover = [];
            var stop = await ConsumeAsync(leftover, cancellationToken);
            if (stop is { } early)
            {
                return early;
            }
        }

        // Bounded in time (duration) and in count (every iteration either reads, or waits until the next
        // chunk is due, so there are at most about two per chunk).
        var maxIterations = 4 * (long)Math.Ceiling(duration / pace.Interval) + 16;
        for (long iteration = 0; iteration < maxIterations; iteration++)
        {
            if (stopAfterMessages is { } messages && MessagesCompleted >= messages)
            {
                return PacedStop.Messages;
            }

            var left = duration - clock.Elapsed;
            if (left <= TimeSpan.Zero)
            {
                return PacedStop.DurationElapsed;
            }

            var budget = stopAfterBytes is { } limit ? limit - BytesConsumed : long.MaxValue;
            if (budget <= 0)
            {
                return PacedStop.ByteLimit;
            }

            // How much the pace allows by now; if this period's chunk is used up, wait for the next period.
            var periods = (long)(clock.Elapsed / pace.Interval) + 1;
            var allowed = periods * pace.ChunkBytes - (BytesConsumed - startBytes);
            if (allowed <= 0)
            {
                var nextPeriod = pace.Interval * (double)((BytesConsumed - startBytes) / pace.ChunkBytes);
                var wait = nextPeriod - clock.Elapsed;
                await Task.Delay(wait > TimeSpan.FromMilliseconds(1) ? (wait < left ? wait : left) : TimeSpan.FromMilliseconds(1), cancellationToken);
                continue;
            }

            var want = (int)Math.Min(Math.Min(allowed, pace.ChunkBytes), budget);
            int n;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                timeout.CancelAfter(left);
                try
                {
                    n = await _socket.ReceiveAsync(buffer.AsMemory(0, want), SocketFlags.None, timeout.Token);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    return PacedStop.DurationElapsed;
                }
                catch (SocketException)
                {
                    _endOfStream = true;
                    return PacedStop.EndOfStream;
                }
            }

            if (n == 0)
            {
                _endOfStream = true;
                return PacedStop.EndOfStream;
            }

            var stopped = await ConsumeAsync(buffer.AsMemory(0, n), cancellationToken);
            if (stopped is { } result)
            {
                return result;
            }
        }

        return PacedStop.DurationElapsed;
    }

    /// <summary>
    /// Reads and discards as fast as the bytes come until the peer ends the connection: true, or false
    /// if it is still open after <paramref name="timeout"/>. Answers nothing.
    /// </summary>
    public async Task<bool> DrainUntilEndAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var scratch = new byte[64 * 1024];
        try
        {
            // Bounded by the timeout; each iteration either returns bytes, ends, or is cancelled.
            while (true)
            {
                var n = await _socket.ReceiveAsync(scratch, SocketFlags.None, cts.Token);
                if (n == 0)
                {
                    _endOfStream = true;
                    return true;
                }
            }
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            return false;
        }
        catch (SocketException)
        {
            _endOfStream = true;
            return true;
        }
    }

    private async Task<PacedStop?> ConsumeAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        Interlocked.Add(ref _bytesConsumed, bytes.Length);
        Interlocked.Exchange(ref _lastProgress, Stopwatch.GetTimestamp());
        _toAnswer.Clear();
        _parser.Feed(bytes.Span, _toAnswer);
        foreach (var control in _toAnswer)
        {
            if (control.Opcode == RawFrame.Ping)
            {
                await SendAsync(RawWebSocket.EncodeFrame(RawFrame.Pong, control.Payload, mask: _maskOutgoing), cancellationToken);
                Interlocked.Increment(ref _pingsAnswered);
            }
            else if (control.Opcode == RawFrame.Close)
            {
                Volatile.Write(ref _close, control);
                try
                {
                    await SendAsync(RawWebSocket.EncodeFrame(RawFrame.Close, control.Payload.AsSpan(0, Math.Min(2, control.Payload.Length)), mask: _maskOutgoing), cancellationToken);
                }
                catch (Exception ex) when (ex is SocketException or OperationCanceledException)
                {
                    // The peer may already have gone.
                }

                return PacedStop.CloseReceived;
            }
        }

        return null;
    }

    private async Task SendAsync(byte[] frame, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        var sent = 0;

        // Bounded: a control frame is at most 131 bytes; each send makes progress or is cancelled.
        while (sent < frame.Length)
        {
            sent += await _socket.SendAsync(frame.AsMemory(sent), SocketFlags.None, timeout.Token);
        }
    }
}

/// <summary>
/// Parses a WebSocket byte stream in whatever pieces it arrives, keeping only headers and control-frame
/// payloads (at most 125 bytes each); data payloads are counted (and copied to a sink when given), so a
/// frame of any size streams through.
/// </summary>
public sealed class IncrementalFrameParser(Stream? payloadSink = null)
{
    private readonly byte[] _header = new byte[14];
    private readonly byte[] _mask = new byte[4];
    private readonly byte[] _control = new byte[125];
    private readonly byte[] _unmasked = new byte[16 * 1024];
    private int _headerFilled;
    private bool _inPayload;
    private long _payloadLength;
    private long _payloadOffset;
    private bool _fin;
    private byte _rsv;
    private byte _opcode;
    private bool _masked;
    private long _dataBytes;
    private int _messages;

    /// <summary>Data payload bytes parsed so far.</summary>
    public long DataBytes => Interlocked.Read(ref _dataBytes);

    /// <summary>Data frames with FIN set parsed so far (whole messages).</summary>
    public int MessagesCompleted => Volatile.Read(ref _messages);

    /// <summary>Parses <paramref name="bytes"/>; each control frame completed in them is added to <paramref name="controlFrames"/>.</summary>
    public void Feed(ReadOnlySpan<byte> bytes, List<RawFrame> controlFrames)
    {
        // Bounded: every iteration consumes at least one byte, or completes an empty frame after its header.
        while (bytes.Length > 0 || (_inPayload && _payloadOffset == _payloadLength))
        {
            if (!_inPayload)
            {
                var needed = HeaderLength();
                var take = Math.Min(needed - _headerFilled, bytes.Length);
                bytes[..take].CopyTo(_header.AsSpan(_headerFilled));
                _headerFilled += take;
                bytes = bytes[take..];
                if (_headerFilled < 2 || _headerFilled < HeaderLength())
                {
                    continue;
                }

                StartPayload();
                continue;
            }

            var chunk = (int)Math.Min(_payloadLength - _payloadOffset, bytes.Length);
            var piece = bytes[..chunk];
            if (IsControl)
            {
                piece.CopyTo(_control.AsSpan((int)_payloadOffset));
            }
            else
            {
                Interlocked.Add(ref _dataBytes, chunk);
                if (payloadSink is not null)
                {
                    WriteData(piece);
                }
            }

            _payloadOffset += chunk;
            bytes = bytes[chunk..];
            if (_payloadOffset == _payloadLength)
            {
                EndFrame(controlFrames);
            }
        }
    }

    private bool IsControl => (_opcode & 0x8) != 0;

    private int HeaderLength()
    {
        if (_headerFilled < 2)
        {
            return 2;
        }

        var len7 = _header[1] & 0x7F;
        return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((_header[1] & 0x80) != 0 ? 4 : 0);
    }

    private void StartPayload()
    {
        _fin = (_header[0] & 0x80) != 0;
        _rsv = (byte)((_header[0] >> 4) & 7);
        _opcode = (byte)(_header[0] & 0x0F);
        _masked = (_header[1] & 0x80) != 0;
        var len7 = _header[1] & 0x7F;
        _payloadLength = len7 switch
        {
            126 => BinaryPrimitives.ReadUInt16BigEndian(_header.AsSpan(2)),
            127 => (long)BinaryPrimitives.ReadUInt64BigEndian(_header.AsSpan(2)),
            _ => len7,
        };
        if (_masked)
        {
            _header.AsSpan(HeaderLength() - 4, 4).CopyTo(_mask);
        }

        if (IsControl && _payloadLength > 125)
        {
            throw new InvalidDataException($"control frame (opcode {_opcode}) of {_payloadLength} bytes");
        }

        _payloadOffset = 0;
        _inPayload = true;
    }

    private void WriteData(ReadOnlySpan<byte> piece)
    {
        if (!_masked)
        {
            payloadSink!.Write(piece);
            return;
        }

        var offset = _payloadOffset;

        // Bounded by the piece's length, in 16 KiB steps.
        while (piece.Length > 0)
        {
            var n = Math.Min(piece.Length, _unmasked.Length);
            for (var i = 0; i < n; i++)
            {
                _unmasked[i] = (byte)(piece[i] ^ _mask[(offset + i) & 3]);
            }

            payloadSink!.Write(_unmasked, 0, n);
            piece = piece[n..];
            offset += n;
        }
    }

    private void EndFrame(List<RawFrame> controlFrames)
    {
        if (IsControl)
        {
            var payload = _control.AsSpan(0, (int)_payloadLength).ToArray();
            if (_masked)
            {
                for (var i = 0; i < payload.Length; i++)
                {
                    payload[i] ^= _mask[i & 3];
                }
            }

            controlFrames.Add(new RawFrame(_fin, _rsv, _opcode, _masked, payload));
        }
        else if (_fin)
        {
            Interlocked.Increment(ref _messages);
        }

        _inPayload = false;
        _headerFilled = 0;
        _payloadLength = 0;
        _payloadOffset = 0;
    }
}

using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace ReaperProxy.LoadTest;

/// <summary>
/// RFC 6455 by hand over a plain socket, for the slow-peer measurements: the handshakes, frames to send,
/// an incremental frame parser and a paced reader. Nothing here buffers more than the caller asks for, so
/// what the kernel sees (the receive window) is exactly what the paced application reads.
/// </summary>
internal static class RawWebSocket
{
    public const byte Binary = 0x2;
    public const byte Close = 0x8;
    public const byte Ping = 0x9;
    public const byte Pong = 0xA;
    private const string AcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

    public static string AcceptFor(string key) => Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + AcceptGuid)));

    /// <summary>Reads an HTTP head through its blank line one byte at a time: no frame byte after it is consumed.</summary>
    public static async Task<string[]> ReadHeadAsync(Socket socket, CancellationToken cancellationToken)
    {
        var head = new List<byte>(512);
        var one = new byte[1];
        while (true)
        {
            if (await socket.ReceiveAsync(one, SocketFlags.None, cancellationToken) == 0)
            {
                throw new IOException("connection ended during the handshake");
            }

            head.Add(one[0]);
            if (head.Count >= 4 && head[^1] == '\n' && head[^2] == '\r' && head[^3] == '\n' && head[^4] == '\r')
            {
                return Encoding.ASCII.GetString([.. head]).Split("\r\n");
            }

            if (head.Count > 16384)
            {
                throw new IOException("HTTP head over 16 KiB");
            }
        }
    }

    public static string? Header(string[] lines, string name)
    {
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && line.AsSpan(0, colon).Trim().Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                return line[(colon + 1)..].Trim();
            }
        }

        return null;
    }

    /// <summary>The client's upgrade: a random Sec-WebSocket-Key, and the server's Sec-WebSocket-Accept checked.</summary>
    public static async Task ClientHandshakeAsync(Socket socket, Uri uri, CancellationToken cancellationToken)
    {
        var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        var request = $"GET {uri.PathAndQuery} HTTP/1.1\r\nHost: {uri.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            $"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n";
        await SendAllAsync(socket, Encoding.ASCII.GetBytes(request), cancellationToken);
        var head = await ReadHeadAsync(socket, cancellationToken);
        if (!head[0].StartsWith("HTTP/1.1 101", StringComparison.Ordinal))
        {
            throw new IOException($"upgrade refused: {head[0]}");
        }

        var accept = Header(head, "Sec-WebSocket-Accept");
        if (accept != AcceptFor(key))
        {
            throw new IOException($"Sec-WebSocket-Accept '{accept}' does not match the key");
        }
    }

    /// <summary>The server's side: reads the upgrade request, answers 101; returns the request target (path and query).</summary>
    public static async Task<string> ServerHandshakeAsync(Socket socket, CancellationToken cancellationToken)
    {
        var head = await ReadHeadAsync(socket, cancellationToken);
        var parts = head[0].Split(' ');
        var key = Header(head, "Sec-WebSocket-Key");
        if (parts.Length != 3 || parts[0] != "GET" || key is null ||
            !string.Equals(Header(head, "Upgrade"), "websocket", StringComparison.OrdinalIgnoreCase))
        {
            await SendAllAsync(socket, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray(), cancellationToken);
            throw new IOException($"not a WebSocket upgrade: {head[0]}");
        }

        var response = $"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {AcceptFor(key)}\r\n\r\n";
        await SendAllAsync(socket, Encoding.ASCII.GetBytes(response), cancellationToken);
        return parts[1];
    }

    public static async Task SendAllAsync(Socket socket, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        while (data.Length > 0)
        {
            var sent = await socket.SendAsync(data, SocketFlags.None, cancellationToken);
            data = data[sent..];
        }
    }

    /// <summary>
    /// Reads one whole frame from the server (unmasked), its payload into <paramref name="buffer"/>;
    /// returns its opcode and payload length. Throws at the end of the stream or for a payload that does
    /// not fit.
    /// </summary>
    public static async Task<(int Opcode, int Length)> ReadFrameAsync(Socket socket, byte[] buffer, CancellationToken cancellationToken)
    {
        var header = new byte[8];
        await ReceiveExactAsync(socket, header.AsMemory(0, 2), cancellationToken);
        var opcode = header[0] & 0x0F;
        long length = header[1] & 0x7F;
        if (length == 126)
        {
            await ReceiveExactAsync(socket, header.AsMemory(0, 2), cancellationToken);
            length = BinaryPrimitives.ReadUInt16BigEndian(header);
        }
        else if (length == 127)
        {
            await ReceiveExactAsync(socket, header.AsMemory(0, 8), cancellationToken);
            length = (long)BinaryPrimitives.ReadUInt64BigEndian(header);
        }

        if (length > buffer.Length)
        {
            throw new IOException($"a frame of {length} bytes does not fit the {buffer.Length}-byte buffer");
        }

        await ReceiveExactAsync(socket, buffer.AsMemory(0, (int)length), cancellationToken);
        return (opcode, (int)length);
    }

    private static async Task ReceiveExactAsync(Socket socket, Memory<byte> target, CancellationToken cancellationToken)
    {
        while (target.Length > 0)
        {
            var n = await socket.ReceiveAsync(target, SocketFlags.None, cancellationToken);
            if (n == 0)
            {
                throw new EndOfStreamException("the connection ended");
            }

            target = target[n..];
        }
    }

    /// <summary>A control frame (FIN set); masked with a random key if <paramref name="mask"/> (client to server).</summary>
    public static byte[] ControlFrame(byte opcode, ReadOnlySpan<byte> payload, bool mask)
    {
        var frame = new byte[2 + (mask ? 4 : 0) + payload.Length];
        frame[0] = (byte)(0x80 | opcode);
        frame[1] = (byte)((mask ? 0x80 : 0) | payload.Length);
        if (!mask)
        {
            payload.CopyTo(frame.AsSpan(2));
            return frame;
        }

        RandomNumberGenerator.Fill(frame.AsSpan(2, 4));
        for (var i = 0; i < payload.Length; i++)
        {
            frame[6 + i] = (byte)(payload[i] ^ frame[2 + (i % 4)]);
        }

        return frame;
    }

    /// <summary>A copy of <paramref name="payload"/> masked with <paramref name="key"/> (RFC 6455 §5.3).</summary>
    public static byte[] Mask(ReadOnlySpan<byte> payload, ReadOnlySpan<byte> key)
    {
        var masked = new byte[payload.Length];
        for (var i = 0; i < payload.Length; i++)
        {
            masked[i] = (byte)(payload[i] ^ key[i % 4]);
        }

        return masked;
    }

    public static byte[] CloseFrame(int code, bool mask)
    {
        Span<byte> payload = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(payload, (ushort)code);
        return ControlFrame(Close, payload, mask);
    }

    /// <summary>The header of one binary frame (FIN set) of <paramref name="length"/> bytes, masked with <paramref name="maskKey"/> if given.</summary>
    public static byte[] DataFrameHeader(long length, ReadOnlySpan<byte> maskKey)
    {
        var masked = maskKey.Length == 4;
        var header = new List<byte> { 0x80 | Binary };
        var maskBit = masked ? 0x80 : 0;
        if (length < 126)
        {
            header.Add((byte)(maskBit | (int)length));
        }
        else if (length <= ushort.MaxValue)
        {
            header.Add((byte)(maskBit | 126));
            header.Add((byte)(length >> 8));
            header.Add((byte)length);
        }
        else
        {
            header.Add((byte)(maskBit | 127));
            for (var shift = 56; shift >= 0; shift -= 8)
            {
                header.Add((byte)(length >> shift));
            }
        }

        if (masked)
        {
            header.AddRange(maskKey);
        }

        return [.. header];
    }
}

/// <summary>
/// Frames from a byte stream fed in pieces of any size. Data payloads are only counted; a control frame's
/// payload (at most 125 bytes) is unmasked and handed over complete.
/// </summary>
internal sealed class FrameParser
{
    private readonly byte[] _header = new byte[14];
    private readonly byte[] _mask = new byte[4];
    private readonly byte[] _control = new byte[125];
    private int _headerHave;
    private int _headerNeed = 2;
    private bool _inPayload;
    private long _payloadLeft;
    private int _opcode;
    private bool _masked;
    private int _controlHave;

    public long DataBytes { get; private set; }

    public long Frames { get; private set; }

    /// <summary>Feeds bytes; <paramref name="onControl"/> gets each complete control frame (opcode, unmasked payload).</summary>
    public void Feed(ReadOnlySpan<byte> data, Action<int, byte[]> onControl)
    {
        while (data.Length > 0 || _inPayload)
        {
            if (!_inPayload)
            {
                var take = Math.Min(_headerNeed - _headerHave, data.Length);
                data[..take].CopyTo(_header.AsSpan(_headerHave));
                _headerHave += take;
                data = data[take..];
                if (_headerHave < _headerNeed)
                {
                    return;
                }

                if (_headerNeed == 2)
                {
                    var length7 = _header[1] & 0x7F;
                    var extra = (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + ((_header[1] & 0x80) != 0 ? 4 : 0);
                    if (extra > 0)
                    {
                        _headerNeed = 2 + extra;
                        continue;
                    }
                }

                StartPayload();
            }

            var chunk = (int)Math.Min(_payloadLeft, data.Length);
            if (_opcode >= 0x8)
            {
                for (var i = 0; i < chunk && _controlHave < _control.Length; i++, _controlHave++)
                {
                    _control[_controlHave] = (byte)(data[i] ^ (_masked ? _mask[_controlHave % 4] : 0));
                }
            }
            else
            {
                DataBytes += chunk;
            }

            _payloadLeft -= chunk;
            data = data[chunk..];
            if (_payloadLeft > 0)
            {
                return;
            }

            _inPayload = false;
            Frames++;
            if (_opcode >= 0x8)
            {
                onControl(_opcode, _control.AsSpan(0, _controlHave).ToArray());
            }
        }
    }

    private void StartPayload()
    {
        _opcode = _header[0] & 0x0F;
        _masked = (_header[1] & 0x80) != 0;
        var length7 = _header[1] & 0x7F;
        var offset = 2;
        _payloadLeft = length7 switch
        {
            126 => BinaryPrimitives.ReadUInt16BigEndian(_header.AsSpan(2)),
            127 => (long)BinaryPrimitives.ReadUInt64BigEndian(_header.AsSpan(2)),
            _ => length7,
        };
        offset += length7 == 126 ? 2 : length7 == 127 ? 8 : 0;
        if (_masked)
        {
            _header.AsSpan(offset, 4).CopyTo(_mask);
        }

        _controlHave = 0;
        _headerHave = 0;
        _headerNeed = 2;
        _inPayload = true;
    }
}

/// <summary>
/// Samples the kernel's view of one socket (Linux TCP_INFO) every 10 ms: when <c>tcpi_bytes_received</c>
/// moves (the peer's data was accepted into the receive window, so its sender's <c>tcpi_bytes_acked</c>
/// moves one round trip later), how far apart those moves are and how big, and when the connection
/// leaves ESTABLISHED (a FIN or RST from the peer, seen at once even behind unread data).
/// </summary>
internal sealed class TcpInfoSampler
{
    private const int SolTcp = 6;
    private const int TcpInfo = 11;
    private const int InfoLength = 232;
    private readonly Socket _socket;
    private readonly Stopwatch _clock;
    private readonly List<long> _increments = [];
    private double _lastMoveAt = -1;
    private ulong _lastReceived;

    public TcpInfoSampler(Socket socket, Stopwatch clock)
    {
        _socket = socket;
        _clock = clock;
    }

    public double MaxGapSeconds { get; private set; }

    public double MaxGapEndedAt { get; private set; }

    public double? LeftEstablishedAt { get; private set; }

    public int LeftEstablishedState { get; private set; }

    public uint RcvMss { get; private set; }

    public uint AdvMss { get; private set; }

    public uint Pmtu { get; private set; }

    public uint RcvSpace { get; private set; }

    public TcpGapStats Stats(double endAt)
    {
        var sorted = _increments.Order().ToArray();
        // A connection the peer ended: its last gap runs until then, not until the reads stopped.
        var until = LeftEstablishedAt is { } left ? Math.Min(left, endAt) : endAt;
        var openGap = _lastMoveAt < 0 ? 0 : Math.Max(0, until - _lastMoveAt);
        return new TcpGapStats(
            Moves: _increments.Count,
            MedianMoveBytes: sorted.Length == 0 ? 0 : sorted[sorted.Length / 2],
            MaxGapSeconds: Math.Round(MaxGapSeconds, 3),
            MaxGapEndedAtSeconds: Math.Round(MaxGapEndedAt, 3),
            OpenGapAtEndSeconds: Math.Round(openGap, 3),
            LeftEstablishedAtSeconds: LeftEstablishedAt is { } at ? Math.Round(at, 3) : null,
            LeftEstablishedState: LeftEstablishedState,
            RcvMss: RcvMss,
            AdvMss: AdvMss,
            Pmtu: Pmtu,
            RcvSpace: RcvSpace);
    }

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var info = new byte[InfoLength];
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                Sample(info);
                await Task.Delay(10, cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
            // Sampling ends with the measurement.
        }
    }

    private void Sample(byte[] info)
    {
        int length;
        try
        {
            length = _socket.GetRawSocketOption(SolTcp, TcpInfo, info);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return;
        }

        if (length < 136)
        {
            return;
        }

        var now = _clock.Elapsed.TotalSeconds;
        var state = info[0];
        if (state != 1 && LeftEstablishedAt is null)
        {
            LeftEstablishedAt = now;
            LeftEstablishedState = state;
        }

        RcvMss = MemoryMarshal.Read<uint>(info.AsSpan(20));
        Pmtu = MemoryMarshal.Read<uint>(info.AsSpan(60));
        AdvMss = MemoryMarshal.Read<uint>(info.AsSpan(84));
        RcvSpace = MemoryMarshal.Read<uint>(info.AsSpan(96));
        var received = MemoryMarshal.Read<ulong>(info.AsSpan(128));
        if (received == _lastReceived)
        {
            return;
        }

        if (_lastMoveAt >= 0)
        {
            _increments.Add((long)(received - _lastReceived));
            if (now - _lastMoveAt > MaxGapSeconds)
            {
                MaxGapSeconds = now - _lastMoveAt;
                MaxGapEndedAt = now;
            }
        }

        _lastMoveAt = now;
        _lastReceived = received;
    }
}

/// <summary>
/// An application that takes <c>step</c> bytes off the socket at a steady <c>rate</c> (bytes/s, on a
/// Stopwatch schedule; after falling behind, for instance while no data was there, it does not burst to
/// catch up), answers Pings with Pongs (masked when it is the client) and stops at a Close, at the end of
/// the stream, or when the duration is over.
/// </summary>
internal static class PacedReader
{
    public static async Task<PacedOutcome> ReadAsync(Socket socket, double rate, int step, TimeSpan duration, bool client, Stopwatch clock, CancellationToken stop)
    {
        var parser = new FrameParser();
        var buffer = new byte[step];
        var interval = step / rate;
        var end = clock.Elapsed.TotalSeconds + duration.TotalSeconds;
        var next = clock.Elapsed.TotalSeconds;
        var read = 0L;
        var pings = 0;
        var starved = 0.0;
        int? closeCode = null;
        string? closeReason = null;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stop);
        deadline.CancelAfter(duration);
        try
        {
            while (clock.Elapsed.TotalSeconds < end)
            {
                var wait = next - clock.Elapsed.TotalSeconds;
                if (wait > 0)
                {
                    await Task.Delay(TimeSpan.FromSeconds(wait), deadline.Token);
                }

                for (var got = 0; got < step;)
                {
                    var before = clock.Elapsed.TotalSeconds;
                    var n = await socket.ReceiveAsync(buffer.AsMemory(got, step - got), SocketFlags.None, deadline.Token);
                    var waited = clock.Elapsed.TotalSeconds - before;
                    if (waited > 0.005)
                    {
                        starved += waited;
                    }

                    if (n == 0)
                    {
                        return Outcome("eof");
                    }

                    read += n;
                    var pongs = new List<byte[]>();
                    parser.Feed(buffer.AsSpan(got, n), (opcode, payload) =>
                    {
                        if (opcode == RawWebSocket.Ping)
                        {
                            pongs.Add(RawWebSocket.ControlFrame(RawWebSocket.Pong, payload, client));
                        }
                        else if (opcode == RawWebSocket.Close && closeCode is null)
                        {
                            closeCode = payload.Length >= 2 ? BinaryPrimitives.ReadUInt16BigEndian(payload) : 1005;
                            closeReason = payload.Length > 2 ? System.Text.Encoding.UTF8.GetString(payload.AsSpan(2)) : "";
                        }
                    });
                    got += n;
                    foreach (var pong in pongs)
                    {
                        pings++;
                        await RawWebSocket.SendAllAsync(socket, pong, stop);
                    }

                    if (closeCode is { } code)
                    {
                        await RawWebSocket.SendAllAsync(socket, RawWebSocket.CloseFrame(code is 1005 or 1006 ? 1000 : code, client), stop);
                        return Outcome("close");
                    }
                }

                next += interval;
                var now = clock.Elapsed.TotalSeconds;
                if (now - next > interval)
                {
                    next = now;
                }
            }

            return Outcome("duration");
        }
        catch (OperationCanceledException)
        {
            return Outcome("duration");
        }
        catch (SocketException ex)
        {
            return Outcome($"socket: {ex.SocketErrorCode}");
        }

        PacedOutcome Outcome(string end) => new(end, clock.Elapsed.TotalSeconds, read, parser.DataBytes, parser.Frames, pings, Math.Round(starved, 3), closeCode, closeReason);
    }
}

internal sealed record PacedOutcome(string End, double EndedAt, long BytesRead, long DataBytes, long Frames, int PingsAnswered, double StarvedSeconds, int? CloseCode, string? CloseReason);

internal sealed record TcpGapStats(
    int Moves,
    long MedianMoveBytes,
    double MaxGapSeconds,
    double MaxGapEndedAtSeconds,
    double OpenGapAtEndSeconds,
    double? LeftEstablishedAtSeconds,
    int LeftEstablishedState,
    uint RcvMss,
    uint AdvMss,
    uint Pmtu,
    uint RcvSpace);

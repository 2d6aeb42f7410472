using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace ReaperProxy.LoadTest;

/// <summary>
/// One WebSocket whose peer consumes slowly, to find the slowest rate the proxy still judges alive.
/// <para>download: this client is the slow reader. It asks the backend's <c>/bulk</c> for more than it
/// can read in the duration (one binary frame by default) and takes <c>step</c> bytes at <c>rate</c>.</para>
/// <para>upload: this client is the fast sender (one masked binary frame, as fast as the proxy takes it);
/// the slow reader is <c>slow-backend</c>, told rate, step and duration in the query string.</para>
/// The result says whether the connection lasted the whole duration, and if not how it ended.
/// </summary>
internal static class SlowReader
{
    public static async Task<int> RunAsync(Options options)
    {
        var direction = options.Get("direction", "download");
        if (direction is not ("download" or "upload"))
        {
            throw new FormatException($"--direction: '{direction}' must be download or upload");
        }

        var url = LoopbackUrl(options.Require("url"));
        var rate = options.Int("rate", 2048, max: 100_000_000);
        var step = options.Int("step", Math.Clamp(rate / 16, 1, 1024), max: 1 << 20);
        var rcvbuf = options.Get("rcvbuf") is null ? (int?)null : options.Int("rcvbuf", 0, min: 1024, max: 64 << 20);
        var duration = options.Duration("duration", TimeSpan.FromSeconds(30));
        var defaultSize = Math.Min((long)(rate * duration.TotalSeconds * 2) + (48L << 20), 1L << 30);
        var size = options.Get("size") is { } sizeText
            ? long.Parse(sizeText, NumberStyles.Integer, CultureInfo.InvariantCulture)
            : defaultSize;
        var id = options.Get("id", Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant());

        using var stop = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });

        var query = direction == "download"
            ? $"size={size}"
            : string.Create(CultureInfo.InvariantCulture, $"rate={rate}&step={step}&duration={duration.TotalSeconds + 2}&id={id}");
        var target = new UriBuilder(url) { Query = url.Query.Length > 1 ? $"{url.Query[1..]}&{query}" : query }.Uri;

        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (rcvbuf is { } requested && direction == "download")
        {
            // Before connect: the window scale is chosen at the SYN from the buffer size.
            socket.ReceiveBufferSize = requested;
        }

        var clock = Stopwatch.StartNew();
        using (var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(stop.Token))
        {
            connectTimeout.CancelAfter(TimeSpan.FromSeconds(20));
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Parse(url.Host), url.Port), connectTimeout.Token);
            await RawWebSocket.ClientHandshakeAsync(socket, target, connectTimeout.Token);
        }

        var upgradedAt = clock.Elapsed.TotalSeconds;
        var result = direction == "download"
            ? await DownloadAsync(socket, rate, step, duration, clock, stop.Token)
            : await UploadAsync(socket, size, duration, clock, stop.Token);
        var report = result with
        {
            Id = id,
            Direction = direction,
            Url = target.ToString(),
            Rate = rate,
            Step = step,
            RcvbufRequested = rcvbuf,
            RcvbufEffective = socket.ReceiveBufferSize,
            Size = size,
            DurationSeconds = duration.TotalSeconds,
            UpgradedAtSeconds = Math.Round(upgradedAt, 3),
        };
        Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(report, JsonContext.Default.SlowReaderResult));
        return 0;
    }

    /// <summary>Only loopback addresses (inside a network namespace too): this harness never sends traffic anywhere else.</summary>
    public static Uri LoopbackUrl(string text)
    {
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme is not ("ws" or "http") ||
            !IPAddress.TryParse(uri.Host, out var host) || !IPAddress.IsLoopback(host) || host.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new FormatException($"--url: '{text}' must be ws://127.x.y.z:PORT/PATH (loopback IPv4 only)");
        }

        return uri;
    }

    private static async Task<SlowReaderResult> DownloadAsync(Socket socket, int rate, int step, TimeSpan duration, Stopwatch clock, CancellationToken stop)
    {
        var sampler = new TcpInfoSampler(socket, clock);
        using var sampling = CancellationTokenSource.CreateLinkedTokenSource(stop);
        var samplerTask = sampler.RunAsync(sampling.Token);
        var outcome = await PacedReader.ReadAsync(socket, rate, step, duration, client: true, clock, stop);
        await Task.Delay(20, CancellationToken.None);
        await sampling.CancelAsync();
        await samplerTask;
        var tcp = sampler.Stats(outcome.EndedAt);
        return Result(outcome.End, outcome.EndedAt, tcp, outcome) with
        {
            BytesRead = outcome.BytesRead,
            AchievedRate = Math.Round(outcome.BytesRead / Math.Max(outcome.EndedAt, 0.001), 1),
        };
    }

    // The fast sender: one masked binary frame of SIZE bytes written as fast as the proxy takes it, while
    // a receive loop watches for the proxy's Close (a reaped backend) or the end of the connection.
    private static async Task<SlowReaderResult> UploadAsync(Socket socket, long size, TimeSpan duration, Stopwatch clock, CancellationToken stop)
    {
        var key = RandomNumberGenerator.GetBytes(4);
        var chunk = new byte[64 * 1024];
        for (var i = 0; i < chunk.Length; i++)
        {
            chunk[i] = key[i % 4]; // zeros, masked
        }

        using var done = CancellationTokenSource.CreateLinkedTokenSource(stop);
        done.CancelAfter(duration);
        var sent = 0L;
        var receive = ReceiveUntilEndAsync(socket, clock, done.Token);
        try
        {
            await RawWebSocket.SendAllAsync(socket, RawWebSocket.DataFrameHeader(size, key), done.Token);
            while (sent < size && !receive.IsCompleted)
            {
                var length = (int)Math.Min(chunk.Length, size - sent);
                await RawWebSocket.SendAllAsync(socket, chunk.AsMemory(0, length), done.Token);
                sent += length;
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException)
        {
            // The duration is over, or the connection ended: the receive loop says how.
        }

        if (!receive.IsCompleted)
        {
            await Task.WhenAny(receive, Task.Delay(duration - clock.Elapsed > TimeSpan.Zero ? duration - clock.Elapsed : TimeSpan.Zero, CancellationToken.None));
        }

        await done.CancelAsync();
        var (end, at, code, reason) = await receive;
        return new SlowReaderResult { End = end, EndedAtSeconds = Math.Round(at, 3), Survived = end == "duration", CloseCode = code, CloseReason = reason, BytesSent = sent };
    }

    private static async Task<(string End, double At, int? Code, string? Reason)> ReceiveUntilEndAsync(Socket socket, Stopwatch clock, CancellationToken done)
    {
        await Task.Yield();
        var parser = new FrameParser();
        var buffer = new byte[4096];
        int? code = null;
        string? reason = null;
        try
        {
            while (true)
            {
                var n = await socket.ReceiveAsync(buffer, SocketFlags.None, done);
                if (n == 0)
                {
                    return ("eof", clock.Elapsed.TotalSeconds, code, reason);
                }

                parser.Feed(buffer.AsSpan(0, n), (opcode, payload) =>
                {
                    if (opcode == RawWebSocket.Close && code is null)
                    {
                        code = payload.Length >= 2 ? System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(payload) : 1005;
                        reason = payload.Length > 2 ? System.Text.Encoding.UTF8.GetString(payload.AsSpan(2)) : "";
                    }
                });
                if (code is not null)
                {
                    return ("close", clock.Elapsed.TotalSeconds, code, reason);
                }
            }
        }
        catch (OperationCanceledException)
        {
            return ("duration", clock.Elapsed.TotalSeconds, code, reason);
        }
        catch (SocketException ex)
        {
            return ($"socket: {ex.SocketErrorCode}", clock.Elapsed.TotalSeconds, code, reason);
        }
    }

    public static SlowReaderResult Result(string end, double endedAt, TcpGapStats tcp, PacedOutcome outcome)
    {
        // A connection that left ESTABLISHED (the proxy's FIN or RST) before the duration did not survive,
        // even if the FIN still sits behind unread bytes.
        var ended = tcp.LeftEstablishedAtSeconds is { } left && left < endedAt - 0.05 ? $"tcp state {tcp.LeftEstablishedState}" : end;
        return new SlowReaderResult
        {
            End = ended,
            EndedAtSeconds = Math.Round(tcp.LeftEstablishedAtSeconds is { } l && ended != end ? l : endedAt, 3),
            Survived = ended == "duration",
            CloseCode = outcome.CloseCode,
            CloseReason = outcome.CloseReason,
            PingsAnswered = outcome.PingsAnswered,
            Frames = outcome.Frames,
            StarvedSeconds = outcome.StarvedSeconds,
            Tcp = tcp,
        };
    }
}

internal sealed record SlowReaderResult
{
    public string? Id { get; init; }

    public string? Direction { get; init; }

    public string? Url { get; init; }

    public int Rate { get; init; }

    public int Step { get; init; }

    public int? RcvbufRequested { get; init; }

    public int RcvbufEffective { get; init; }

    public long Size { get; init; }

    public double DurationSeconds { get; init; }

    public double UpgradedAtSeconds { get; init; }

    public bool Survived { get; init; }

    /// <summary>duration (still open at the end), close, eof, socket: ERROR, or tcp state N (the peer's FIN/RST seen by the kernel).</summary>
    public string End { get; init; } = "";

    public double EndedAtSeconds { get; init; }

    public int? CloseCode { get; init; }

    public string? CloseReason { get; init; }

    public long BytesRead { get; init; }

    public long BytesSent { get; init; }

    public double AchievedRate { get; init; }

    public int PingsAnswered { get; init; }

    public long Frames { get; init; }

    public double StarvedSeconds { get; init; }

    public TcpGapStats? Tcp { get; init; }
}

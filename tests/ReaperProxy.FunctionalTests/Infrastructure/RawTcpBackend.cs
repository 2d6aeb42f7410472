using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>Options for <see cref="RawTcpBackend.Start"/>.</summary>
public sealed record RawTcpBackendOptions
{
    /// <summary>How fast the backend reads the WebSocket stream.</summary>
    public Pace Pace { get; init; } = Pace.TenKiBPerSecond;

    /// <summary>The accepted socket's receive buffer (set on the listener, which accepted sockets inherit).</summary>
    public int ReceiveBufferSize { get; init; } = 4096;

    /// <summary>Once this many bytes of the WebSocket stream were read, never read again (a frozen backend). Null: read until the end.</summary>
    public long? StopReadingAfterBytes { get; init; }

    /// <summary>The longest it keeps reading (a bound for the test, well past any test's length).</summary>
    public TimeSpan MaxReadTime { get; init; } = TimeSpan.FromSeconds(120);
}

/// <summary>
/// A WebSocket backend on a raw TCP socket, 127.0.0.1 port 0, for backends that read slowly: it takes one
/// connection, answers the HTTP/1.1 upgrade with <c>101 Switching Protocols</c> and a correct
/// <c>Sec-WebSocket-Accept</c>, then consumes the stream at a steady <see cref="Pace"/> through a small
/// socket receive buffer (so the proxy's writes toward it move only as fast as it reads), answering every
/// Ping with an unmasked Pong and a Close with a Close: a live backend that is slow. With
/// <see cref="RawTcpBackendOptions.StopReadingAfterBytes"/> it freezes part way (a stopped process): it
/// stops reading and never closes.
/// </summary>
public sealed class RawTcpBackend : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly RawTcpBackendOptions _options;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource<PacedFrameReader> _accepted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<long> _stoppedReading = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<PacedStop> _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _run;
    private Socket? _socket;

    private RawTcpBackend(RawTcpBackendOptions options)
    {
        _options = options;
        _listener = new TcpListener(IPAddress.Loopback, 0);

        // Before Listen: accepted sockets inherit it, and the window scale is fixed in the handshake.
        _listener.Server.ReceiveBufferSize = options.ReceiveBufferSize;
        _listener.Start(backlog: 4);
        BaseUri = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/");
        _run = Task.Run(RunAsync);
    }

    /// <summary>The address to point a cluster at.</summary>
    public Uri BaseUri { get; }

    /// <summary>Completes with the reader once the upgrade was answered.</summary>
    public Task<PacedFrameReader> Accepted => _accepted.Task;

    /// <summary>Completes with the <see cref="Stopwatch"/> timestamp at which a frozen backend stopped reading.</summary>
    public Task<long> StoppedReading => _stoppedReading.Task;

    /// <summary>Completes when its reading ended: the peer closed or ended the connection (or the read bound passed).</summary>
    public Task<PacedStop> Ended => _ended.Task;

    /// <summary>The request head the proxy sent.</summary>
    public string? Request { get; private set; }

    /// <summary>Anything that went wrong in the backend itself (a harness bug, not a proxy behaviour).</summary>
    public Exception? Fault { get; private set; }

    /// <summary>Starts listening.</summary>
    public static RawTcpBackend Start(RawTcpBackendOptions? options = null) => new(options ?? new RawTcpBackendOptions());

    private async Task RunAsync()
    {
        try
        {
            var socket = await _listener.AcceptSocketAsync(_stop.Token);
            _socket = socket;
            socket.NoDelay = true;
            var (leftover, key) = await ReadUpgradeAsync(socket);
            var accept = Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")));
            var response = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
                           $"Sec-WebSocket-Accept: {accept}\r\n\r\n";
            await socket.SendAsync(Encoding.ASCII.GetBytes(response), SocketFlags.None, _stop.Token);

            var reader = new PacedFrameReader(socket, maskOutgoing: false, leftover);
            _accepted.TrySetResult(reader);
            var stop = await reader.ReadAsync(_options.Pace, _options.MaxReadTime, _options.StopReadingAfterBytes, cancellationToken: _stop.Token);
            if (stop == PacedStop.ByteLimit)
            {
                _stoppedReading.TrySetResult(Stopwatch.GetTimestamp());

                // Frozen: it never reads again and never closes, until the test ends.
                await Task.Delay(Timeout.Infinite, _stop.Token);
            }

            _ended.TrySetResult(stop);
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Disposed.
        }
        catch (Exception ex)
        {
            Fault = ex;
            _accepted.TrySetException(ex);
        }
    }

    private async Task<(byte[] Leftover, string Key)> ReadUpgradeAsync(Socket socket)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        var buffer = new byte[16 * 1024];
        var filled = 0;
        int headerEnd;
        while ((headerEnd = buffer.AsSpan(0, filled).IndexOf("\r\n\r\n"u8)) < 0)
        {
            if (filled == buffer.Length)
            {
                throw new IOException("upgrade request headers over 16 KiB");
            }

            var n = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, timeout.Token);
            if (n == 0)
            {
                throw new IOException("the proxy closed the connection during the upgrade");
            }

            filled += n;
        }

        Request = Encoding.ASCII.GetString(buffer, 0, headerEnd);
        var key = Request.Split("\r\n")
            .Select(line => line.Split(':', 2))
            .Where(parts => parts.Length == 2 && parts[0].Trim().Equals("Sec-WebSocket-Key", StringComparison.OrdinalIgnoreCase))
            .Select(parts => parts[1].Trim())
            .FirstOrDefault() ?? throw new IOException("no Sec-WebSocket-Key in: " + Request);
        return (buffer.AsSpan(headerEnd + 4, filled - headerEnd - 4).ToArray(), key);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        _socket?.Dispose();
        await Task.WhenAny(_run, Task.Delay(TimeSpan.FromSeconds(2)));
    }
}

using System.Buffers.Binary;
using System.Net.WebSockets;

namespace ReaperProxy.LoadTest.Soak;

/// <summary>
/// A healthy WebSocket through the proxy to the backend's echo: a sender writes sequence-numbered
/// messages of varying size (16 B to 256 KiB, content derived from the connection and the sequence
/// number), at most <see cref="Window"/> in flight, with pauses (some longer than PingInterval, so the
/// proxy pings it); a receiver, always pending (so the proxy's pings are answered at once), checks that
/// every echo arrives whole, in order, with the right bytes. Any end before the soak closes it is a
/// false reap (or a drop).
/// </summary>
internal sealed class HealthyConnection(int id, ClientWebSocket socket, TimeSpan pingInterval)
{
    private const int Window = 4;
    private const int HeaderLength = 12;
    private const int MaxSize = 256 * 1024;
    private readonly SemaphoreSlim _window = new(Window);
    private readonly Random _random = new(id);
    private volatile bool _closing;
    private long _sent;
    private long _received;

    public int Id => id;

    public ClientWebSocket Socket => socket;

    public long Sent => Interlocked.Read(ref _sent);

    public long Received => Interlocked.Read(ref _received);

    public long BytesVerified { get; private set; }

    /// <summary>Echoes whose sequence number was not the next one expected (lost or reordered).</summary>
    public long OutOfOrder { get; private set; }

    /// <summary>Echoes with the right sequence number but wrong bytes or length.</summary>
    public long Corrupted { get; private set; }

    /// <summary>Set when the connection ended (or failed) before the soak closed it.</summary>
    public string? EndedEarly { get; private set; }

    public async Task RunAsync(CancellationToken stop)
    {
        var receiving = ReceiveAsync();
        try
        {
            var buffer = new byte[MaxSize];
            while (!stop.IsCancellationRequested && EndedEarly is null)
            {
                await _window.WaitAsync(stop);
                var seq = _sent;
                var size = NextSize();
                Fill(buffer.AsSpan(0, size), id, seq);
                await socket.SendAsync(buffer.AsMemory(0, size), WebSocketMessageType.Binary, endOfMessage: true, stop);
                Interlocked.Increment(ref _sent);

                // Mostly short pauses; one in 20 longer than PingInterval (but shorter than
                // PingInterval + PongTimeout), during which the proxy pings and the pending receive answers.
                var pause = _random.Next(20) == 0
                    ? pingInterval * (1.1 + _random.NextDouble() * 0.5)
                    : TimeSpan.FromMilliseconds(_random.Next(200));
                await Task.Delay(pause, stop);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The soak is over.
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or ObjectDisposedException)
        {
            EndedEarly ??= $"send: {ex.GetType().Name}: {ex.Message}";
        }

        // Every echo still in flight must still come back.
        using var drain = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (EndedEarly is null && Received < Sent && !drain.IsCancellationRequested)
        {
            await Task.Delay(20, CancellationToken.None);
        }

        if (EndedEarly is null && Received < Sent)
        {
            EndedEarly = $"{Sent - Received} echo(es) missing 20 s after the last send";
        }

        Receiving = receiving;
    }

    /// <summary>The receive loop (it ends with the closing handshake).</summary>
    public Task Receiving { get; private set; } = Task.CompletedTask;

    private async Task ReceiveAsync()
    {
        await Task.Yield();
        var buffer = new byte[MaxSize];
        var expected = new byte[MaxSize];
        try
        {
            while (true)
            {
                var count = 0;
                ValueWebSocketReceiveResult result;
                do
                {
                    if (count == buffer.Length)
                    {
                        throw new WebSocketException(WebSocketError.InvalidState, "an echo longer than any message sent");
                    }

                    result = await socket.ReceiveAsync(buffer.AsMemory(count), CancellationToken.None);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        if (_closing)
                        {
                            return;
                        }

                        EndedEarly ??= $"Close {(int?)socket.CloseStatus} '{socket.CloseStatusDescription}' from the proxy";
                        return;
                    }

                    count += result.Count;
                }
                while (!result.EndOfMessage);

                var seq = count >= HeaderLength ? BinaryPrimitives.ReadInt64BigEndian(buffer.AsSpan(4)) : -1;
                var next = Interlocked.Read(ref _received);
                if (seq != next || count < HeaderLength || BinaryPrimitives.ReadInt32BigEndian(buffer) != id)
                {
                    OutOfOrder++;
                }
                else
                {
                    Fill(expected.AsSpan(0, count), id, seq);
                    if (!buffer.AsSpan(0, count).SequenceEqual(expected.AsSpan(0, count)))
                    {
                        Corrupted++;
                    }
                    else
                    {
                        BytesVerified += count;
                    }
                }

                Interlocked.Increment(ref _received);
                _window.Release();
            }
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or ObjectDisposedException or OperationCanceledException)
        {
            // Once the soak closes the connection, its end is expected.
            if (!_closing)
            {
                EndedEarly ??= $"receive: {ex.GetType().Name}: {ex.Message}";
            }
        }
    }

    /// <summary>The soak's own closing handshake, at the end (a pending receive gets the Close reply).</summary>
    public async Task CloseAsync()
    {
        _closing = true;
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "soak over", bound.Token);
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or OperationCanceledException)
        {
            EndedEarly ??= $"close: {ex.GetType().Name}: {ex.Message}";
        }
    }

    private int NextSize()
    {
        var roll = _random.Next(100);
        return roll < 70 ? _random.Next(HeaderLength + 4, 1024)
            : roll < 95 ? _random.Next(1024, 64 * 1024)
            : _random.Next(64 * 1024, MaxSize);
    }

    // The message: connection id, sequence number, then bytes that depend on both (xorshift), so a byte
    // from another message, another connection or another position does not pass.
    private static void Fill(Span<byte> message, int id, long seq)
    {
        BinaryPrimitives.WriteInt32BigEndian(message, id);
        BinaryPrimitives.WriteInt64BigEndian(message[4..], seq);
        var state = (((ulong)id * 0x9E3779B97F4A7C15UL) ^ ((ulong)(seq + 1) * 0xBF58476D1CE4E5B9UL)) | 1;
        for (var i = HeaderLength; i < message.Length; i++)
        {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            message[i] = (byte)state;
        }
    }
}

using ReaperProxy.FunctionalTests.Infrastructure;
using ReaperProxy.FunctionalTests.Relay;

namespace ReaperProxy.FunctionalTests.BadInput;

/// <summary>
/// A raw client and the raw backend behind it (<see cref="BackendProbe"/>'s <c>/raw</c>), seen from the
/// peer that sends a bad input (<see cref="Sender"/>) and the one that receives what the proxy makes of it.
/// </summary>
public sealed class RawPair : IAsyncDisposable
{
    private readonly RawWebSocket _client;
    private readonly Stream _backendStream;
    private readonly RawFrameReader _backend;
    private readonly Sender _sender;

    private RawPair(RawWebSocket client, Stream backendStream, Sender sender)
    {
        _client = client;
        _backendStream = backendStream;
        _backend = new RawFrameReader(backendStream);
        _sender = sender;
    }

    /// <summary>Whether the sender masks its frames (a client does, RFC 6455 §5.3).</summary>
    public bool SenderMasks => _sender == Sender.Client;

    /// <summary>Opens a raw client on <c>/raw</c> and takes the backend's side of it (open pairs one at a time).</summary>
    public static async Task<RawPair> OpenAsync(RelayFixture fixture, Sender sender)
    {
        var client = await RawWebSocket.ConnectAsync(fixture.Ws("/raw"));
        try
        {
            return new RawPair(client, await fixture.Probe.NextRawStreamAsync(TimeSpan.FromSeconds(5)), sender);
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }
    }

    /// <summary>The sender writes <paramref name="bytes"/> in one write.</summary>
    public Task SendAsync(byte[] bytes) => _sender == Sender.Client ? _client.SendRawAsync(bytes) : _backendStream.WriteRawAsync(bytes);

    /// <summary>The receiver's next frame (null: its connection ended).</summary>
    public Task<RawFrame?> ReceiveAsync(TimeSpan timeout) => ReceiverRead(timeout);

    /// <summary>The sender's next frame (null: its connection ended).</summary>
    public Task<RawFrame?> SenderReceivesAsync(TimeSpan timeout) => SenderRead(timeout);

    /// <summary>The receiver answers a Close with Close 1000; returns the frame as written.</summary>
    public Task<byte[]> AnswerCloseAsync() => ReplyFrameAsync(RawFrame.Close, RawWebSocket.ClosePayload(1000, "ok"));

    /// <summary>The receiver sends a text frame; returns it as written.</summary>
    public Task<byte[]> ReplyAsync(ReadOnlySpan<byte> text) => ReplyFrameAsync(RawFrame.Text, text.ToArray());

    public Task<RawFramesRead> ReceiverReadsUntilEndAsync(TimeSpan timeout) => RawFrames.ReadUntilEndAsync(ReceiverRead, timeout);

    public Task<RawFramesRead> SenderReadsUntilEndAsync(TimeSpan timeout) => RawFrames.ReadUntilEndAsync(SenderRead, timeout);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _client.DisposeAsync();
        await _backendStream.DisposeAsync();
    }

    private Task<RawFrame?> ReceiverRead(TimeSpan? timeout) => _sender == Sender.Client ? BackendReadAsync(timeout) : _client.ReceiveFrameAsync(timeout);

    private Task<RawFrame?> SenderRead(TimeSpan? timeout) => _sender == Sender.Client ? _client.ReceiveFrameAsync(timeout) : BackendReadAsync(timeout);

    // Once the proxy ends the backend's connection, the backend's request ends and Kestrel disposes its
    // upgraded stream: for the raw backend, that is the end of the stream.
    private async Task<RawFrame?> BackendReadAsync(TimeSpan? timeout)
    {
        try
        {
            return await _backend.ReceiveFrameAsync(timeout);
        }
        catch (ObjectDisposedException)
        {
            return null;
        }
    }

    private async Task<byte[]> ReplyFrameAsync(byte opcode, byte[] payload)
    {
        // The receiver is the backend when the client sends, and then does not mask.
        var frame = RawWebSocket.EncodeFrame(opcode, payload, mask: _sender == Sender.Backend);
        if (_sender == Sender.Client)
        {
            await _backendStream.WriteRawAsync(frame);
        }
        else
        {
            await _client.SendRawAsync(frame);
        }

        return frame;
    }
}

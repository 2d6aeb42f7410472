using ReaperProxy.Probe.Protocol;

namespace ReaperProxy.Probe.Tests.Protocol;

/// <summary>The probe's frames: masked as a client must, read back as written, a half frame is a half frame.</summary>
public sealed class FrameTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(125)]
    [InlineData(126)]
    [InlineData(65535)]
    [InlineData(65536)]
    public async Task A_client_frame_is_masked_and_reads_back_as_written_at_every_length_encoding(int length)
    {
        var payload = Enumerable.Range(0, length).Select(i => (byte)(i * 7)).ToArray();
        var wire = FrameWriter.Encode(Opcode.Ping, payload);

        Assert.Equal(0x89, wire[0]);
        Assert.Equal(0x80, wire[1] & 0x80);
        var reader = new FrameReader(new MemoryStream(wire), []);
        var frame = await reader.ReadFrameAsync(CancellationToken.None);

        Assert.NotNull(frame);
        Assert.True(frame.Masked);
        Assert.Equal(length, frame.Length);
        Assert.Equal(payload.Take(125), frame.Payload);
        Assert.Null(await reader.ReadFrameAsync(CancellationToken.None));
        Assert.Equal(StreamEnd.Fin, reader.End);
    }

    [Fact]
    public async Task Data_frames_are_counted_not_kept_and_frames_split_across_reads_are_whole()
    {
        var server = new MemoryStream();
        server.Write([0x82, 126, 0x01, 0x00]);
        server.Write(new byte[256]);
        server.Write([0x88, 0x05, 0x03, 0xE9, (byte)'b', (byte)'y', (byte)'e']);
        var reader = new FrameReader(new OneByteStream(server.ToArray()), [], bufferSize: 16);

        var data = await reader.ReadFrameAsync(CancellationToken.None);
        var close = await reader.ReadFrameAsync(CancellationToken.None);

        Assert.Equal(Opcode.Binary, data!.Opcode);
        Assert.Equal(256, data.Length);
        Assert.Empty(data.Payload);
        Assert.Equal(1001, close!.CloseCode);
        Assert.Equal("bye", close.CloseReason);
    }

    [Fact]
    public void A_truncated_frame_promises_more_than_it_carries()
    {
        var wire = FrameWriter.EncodeTruncated(Opcode.Binary, 1024, 16);

        Assert.Equal(0x82, wire[0]);
        Assert.Equal(0x80 | 126, wire[1]);
        Assert.Equal(1024, (wire[2] << 8) | wire[3]);
        Assert.Equal(2 + 2 + 4 + 16, wire.Length);
    }

    /// <summary>Hands out one byte per read: every split point at once.</summary>
    private sealed class OneByteStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(1, buffer.Length)], cancellationToken);
    }
}

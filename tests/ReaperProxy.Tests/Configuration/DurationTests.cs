using ReaperProxy.Configuration;

namespace ReaperProxy.Tests.Configuration;

public class DurationTests
{
    [Theory]
    [InlineData("00:00:15", 15_000)]
    [InlineData("00:02:00", 120_000)]
    [InlineData("01:00:00", 3_600_000)]
    [InlineData("00:00:00.500", 500)]
    [InlineData("1.00:00:00", 86_400_000)]
    [InlineData(" 00:00:15 ", 15_000)]
    public void The_dotnet_form_is_accepted(string text, double expectedMilliseconds)
    {
        Assert.True(Duration.TryParse(text, out var value, out var error), error);
        Assert.Null(error);
        Assert.Equal(TimeSpan.FromMilliseconds(expectedMilliseconds), value);
    }

    [Theory]
    [InlineData("15s", 15_000)]
    [InlineData("500ms", 500)]
    [InlineData("2m", 120_000)]
    [InlineData("1h", 3_600_000)]
    [InlineData("1d", 86_400_000)]
    [InlineData("7d", 7 * 86_400_000.0)]
    [InlineData(" 15s ", 15_000)]
    [InlineData("15 s", 15_000)]
    public void The_short_form_is_accepted(string text, double expectedMilliseconds)
    {
        Assert.True(Duration.TryParse(text, out var value, out var error), error);
        Assert.Equal(TimeSpan.FromMilliseconds(expectedMilliseconds), value);
    }

    [Theory]
    [InlineData("1.5s", 1_500)]
    [InlineData("0.5s", 500)]
    [InlineData(".5s", 500)]
    [InlineData("0.25m", 15_000)]
    [InlineData("1.5h", 5_400_000)]
    [InlineData("2.5ms", 2.5)]
    public void Fractional_short_forms_are_accepted(string text, double expectedMilliseconds)
    {
        Assert.True(Duration.TryParse(text, out var value, out var error), error);
        Assert.Equal(TimeSpan.FromMilliseconds(expectedMilliseconds), value);
    }

    [Theory]
    [InlineData("15")]
    [InlineData("500")]
    [InlineData("1.5")]
    public void A_number_without_a_unit_is_rejected_with_a_hint(string text)
    {
        Assert.False(Duration.TryParse(text, out _, out var error));
        Assert.Contains($"'{text}' has no unit", error);
        Assert.Contains($"'{text}s'", error);
    }

    [Theory]
    [InlineData("0s")]
    [InlineData("0ms")]
    [InlineData("0.0m")]
    [InlineData("00:00:00")]
    public void Zero_is_rejected(string text)
    {
        Assert.False(Duration.TryParse(text, out _, out var error));
        Assert.Contains($"'{text}' must be a positive duration", error);
    }

    [Theory]
    [InlineData("-00:00:05")]
    [InlineData("-1.00:00:00")]
    public void A_negative_dotnet_form_is_rejected_as_not_positive(string text)
    {
        Assert.False(Duration.TryParse(text, out _, out var error));
        Assert.Contains($"'{text}' must be a positive duration", error);
    }

    [Theory]
    [InlineData("-5s")]
    [InlineData("-500ms")]
    public void A_negative_short_form_is_rejected_as_not_positive(string text)
    {
        Assert.False(Duration.TryParse(text, out var value, out var error));
        Assert.Equal(default, value);
        Assert.Contains($"'{text}' must be a positive duration", error);
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("s")]
    [InlineData("ms")]
    [InlineData("15x")]
    [InlineData("15S")]
    [InlineData("15sec")]
    [InlineData("fifteen seconds")]
    [InlineData("1,5s")]
    [InlineData("1e3ms")]
    [InlineData("NaNs")]
    public void Garbage_is_rejected(string text)
    {
        Assert.False(Duration.TryParse(text, out var value, out var error));
        Assert.Equal(default, value);
        Assert.Contains($"'{text}' is not a duration", error);
    }

    [Theory]
    [InlineData("00:00:xx")]
    [InlineData("1:2:3:4:5")]
    [InlineData("::")]
    public void A_malformed_dotnet_form_is_rejected(string text)
    {
        Assert.False(Duration.TryParse(text, out _, out var error));
        Assert.Contains($"'{text}' is not a duration", error);
        Assert.Contains("hh:mm:ss", error);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    public void Empty_is_rejected(string? text)
    {
        Assert.False(Duration.TryParse(text, out _, out var error));
        Assert.StartsWith("is empty", error);
    }

    [Theory]
    [InlineData("8d")]
    [InlineData("169h")]
    [InlineData("7.00:00:00.001")]
    [InlineData("100000000000000000000d")]
    public void Longer_than_the_maximum_is_rejected(string text)
    {
        Assert.False(Duration.TryParse(text, out _, out var error));
        Assert.Contains($"'{text}'", error);
    }

    [Fact]
    public void The_maximum_itself_is_accepted_and_its_error_names_it()
    {
        Assert.True(Duration.TryParse("7.00:00:00", out var max, out _));
        Assert.Equal(Duration.Max, max);

        Assert.False(Duration.TryParse("8d", out _, out var error));
        Assert.Equal("'8d' is longer than the maximum of 168h", error);
    }

    [Theory]
    [InlineData(500, "500ms")]
    [InlineData(2.5, "2.5ms")]
    [InlineData(1_500, "1.5s")]
    [InlineData(15_000, "15s")]
    [InlineData(90_000, "90s")]
    [InlineData(120_000, "2m")]
    [InlineData(3_600_000, "1h")]
    [InlineData(5_400_000, "90m")]
    [InlineData(7 * 86_400_000.0, "168h")]
    public void Format_writes_the_short_form(double milliseconds, string expected) =>
        Assert.Equal(expected, Duration.Format(TimeSpan.FromMilliseconds(milliseconds)));

    [Theory]
    [InlineData("500ms")]
    [InlineData("1.5s")]
    [InlineData("15s")]
    [InlineData("2m")]
    [InlineData("1h")]
    [InlineData("00:00:00.250")]
    [InlineData("00:00:15")]
    [InlineData("00:01:30")]
    [InlineData("1.12:00:00")]
    [InlineData("7d")]
    public void Format_round_trips_through_TryParse(string text)
    {
        Assert.True(Duration.TryParse(text, out var value, out _));
        var formatted = Duration.Format(value);
        Assert.True(Duration.TryParse(formatted, out var again, out var error), error);
        Assert.Equal(value, again);
    }
}

using ReaperProxy.Hosting;

namespace ReaperProxy.Tests.Hosting;

public class CommandLineTests
{
    [Fact]
    public void No_arguments_give_an_empty_command_line()
    {
        var commandLine = Parse();

        Assert.Equal(new CommandLine(), commandLine);
    }

    [Fact]
    public void Every_option_is_read_with_a_separate_value()
    {
        var commandLine = Parse("--config", "reaper.json", "--urls", "http://127.0.0.1:8081;http://[::1]:8081", "--admin-urls", "http://127.0.0.1:9465");

        Assert.Equal(
            new CommandLine { ConfigFile = "reaper.json", Urls = "http://127.0.0.1:8081;http://[::1]:8081", AdminUrls = "http://127.0.0.1:9465" },
            commandLine);
    }

    [Fact]
    public void Every_option_is_read_in_the_equals_form()
    {
        var commandLine = Parse("--config=reaper.json", "--urls=http://127.0.0.1:8081", "--admin-urls=http://127.0.0.1:9465");

        Assert.Equal(
            new CommandLine { ConfigFile = "reaper.json", Urls = "http://127.0.0.1:8081", AdminUrls = "http://127.0.0.1:9465" },
            commandLine);
    }

    [Fact]
    public void An_equals_sign_inside_a_value_is_kept()
    {
        Assert.Equal("a=b.json", Parse("--config=a=b.json").ConfigFile);
        Assert.Equal("a=b.json", Parse("--config", "a=b.json").ConfigFile);
    }

    [Fact]
    public void Check_config_is_read_in_both_forms()
    {
        Assert.Equal("bad.json", Parse("--check-config", "bad.json").CheckConfigFile);
        Assert.Equal("bad.json", Parse("--check-config=bad.json").CheckConfigFile);
    }

    [Fact]
    public void Check_config_may_repeat_the_same_file_as_config()
    {
        var commandLine = Parse("--config", "a.json", "--check-config", "a.json");

        Assert.Equal("a.json", commandLine.CheckConfigFile);
    }

    [Fact]
    public void Check_config_with_a_different_config_file_is_a_usage_error()
    {
        Assert.Equal(
            "--check-config validates one file; do not combine it with a different --config",
            ParseError("--config", "a.json", "--check-config", "b.json"));
    }

    [Fact]
    public void A_later_option_overrides_an_earlier_one()
    {
        Assert.Equal("second.json", Parse("--config", "first.json", "--config=second.json").ConfigFile);
    }

    [Theory]
    [InlineData("-h")]
    [InlineData("--help")]
    [InlineData("-?")]
    public void Help_is_recognised(string arg)
    {
        Assert.True(Parse(arg).Help);
        Assert.True(Parse("--config", "a.json", arg).Help);
    }

    [Theory]
    [InlineData("--config")]
    [InlineData("--urls")]
    [InlineData("--admin-urls")]
    [InlineData("--check-config")]
    public void An_option_at_the_end_without_its_value_is_a_usage_error(string option)
    {
        Assert.Equal($"option {option} needs a value", ParseError(option));
    }

    [Theory]
    [InlineData("--config")]
    [InlineData("--urls")]
    [InlineData("--admin-urls")]
    [InlineData("--check-config")]
    public void An_option_followed_by_another_option_is_a_usage_error(string option)
    {
        Assert.Equal($"option {option} needs a value", ParseError(option, "--help"));
    }

    [Theory]
    [InlineData("--config=")]
    [InlineData("--urls= ")]
    [InlineData("--admin-urls=")]
    [InlineData("--check-config=")]
    public void An_empty_value_is_a_usage_error(string arg)
    {
        Assert.Equal($"option {arg[..arg.IndexOf('=', StringComparison.Ordinal)]} needs a non-empty value", ParseError(arg));
    }

    [Fact]
    public void An_empty_separate_value_is_a_usage_error()
    {
        Assert.Equal("option --config needs a non-empty value", ParseError("--config", ""));
    }

    [Theory]
    [InlineData("--bogus")]
    [InlineData("--bogus=1")]
    [InlineData("-c")]
    [InlineData("reaper.json")]
    [InlineData("--CONFIG")]
    [InlineData("--url")]
    public void An_unknown_argument_is_a_usage_error_that_quotes_it(string arg)
    {
        Assert.Equal($"unknown argument '{arg}'", ParseError(arg));
    }

    [Fact]
    public void An_unknown_argument_after_good_ones_is_still_a_usage_error()
    {
        Assert.Equal("unknown argument 'extra'", ParseError("--config", "a.json", "extra"));
    }

    [Fact]
    public void The_usage_text_names_every_option()
    {
        foreach (var option in new[] { "--config", "--urls", "--admin-urls", "--check-config", "--help" })
        {
            Assert.Contains(option, CommandLine.Usage, StringComparison.Ordinal);
        }
    }

    private static CommandLine Parse(params string[] args)
    {
        var commandLine = CommandLine.Parse(args, out var error);
        Assert.Null(error);
        Assert.NotNull(commandLine);
        return commandLine;
    }

    private static string? ParseError(params string[] args)
    {
        var commandLine = CommandLine.Parse(args, out var error);
        Assert.Null(commandLine);
        Assert.NotNull(error);
        return error;
    }
}
